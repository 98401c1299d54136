import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["__test__/**/*.test.ts"],
    // Native addon + database clients: one process per test file.
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
