// `npm run test:unit`: the JS parts that need no PostgreSQL and no addon (lib/errors.cjs,
// lib/options.cjs, lib/driver.cjs's encoders, lib/platform.cjs). Seconds, not minutes.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["__test__/unit/**/*.test.ts"],
    testTimeout: 10_000,
  },
});
