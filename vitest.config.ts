import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["__test__/**/*.test.ts"],
    // The Citus suite needs a cluster: `npm run test:citus` (its own config) starts one.
    exclude: ["**/node_modules/**", "__test__/citus/**"],
    // Native addon + database clients: one process per test file.
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // The stand-in @aibind/core (a symlink to __test__/fixtures, so not under
    // node_modules) is loaded by Node itself, as in an app: the suites' ChatHistory is the
    // one lib/conversation-store.cjs imports.
    server: { deps: { external: [/fixtures\/aibind-core/] } },
  },
});
