// `npm run test:citus`: the suite on a Citus cluster (scripts/with-citus.mjs starts a
// throwaway coordinator and two workers). `npm test` leaves this folder out.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["__test__/citus/**/*.test.ts"],
    pool: "forks",
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    server: { deps: { external: [/fixtures\/aibind-core/] } },
  },
});
