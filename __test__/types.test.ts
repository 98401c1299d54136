// The public types compile against the interfaces of @aibind/core and real clients'
// types; and the test suites themselves type-check (vitest does not).
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));

/** Runs tsc on a project; resolves what it printed (nothing when it compiles). */
async function compile(project: string) {
  const tsc = `${root}node_modules/typescript/bin/tsc`;
  return run(process.execPath, [tsc, "-p", `${root}${project}`]).then(
    () => "",
    (err: { stdout: string }) => err.stdout || "tsc failed",
  );
}

describe("types", () => {
  it("index.d.ts compiles: StreamStore / ConversationStore assignability, options, clients, error codes", async () => {
    expect(await compile("__test__/types/tsconfig.json")).toBe("");
  }, 60_000);

  it("the test suites type-check", async () => {
    expect(await compile("__test__/tsconfig.json")).toBe("");
  }, 60_000);
});
