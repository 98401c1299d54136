// The public types compile against the interfaces of @aibind/core and real clients' types.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));

describe("index.d.ts", () => {
  it("compiles: StreamStore / ConversationStore assignability, options, clients, error codes", async () => {
    const tsc = `${root}node_modules/typescript/bin/tsc`;
    const result = await run(process.execPath, [tsc, "-p", `${root}__test__/types/tsconfig.json`]).then(
      () => ({ ok: true, out: "" }),
      (err: { stdout: string }) => ({ ok: false, out: err.stdout }),
    );
    expect(result.out).toBe("");
    expect(result.ok).toBe(true);
  }, 60_000);
});
