// Loading the addon where no binary fits: the import fails with a message that names the
// platform, the ones with prebuilt binaries, and how to build from source.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const entry = fileURLToPath(new URL("../index.cjs", import.meta.url));

describe("a platform without a prebuilt binary", () => {
  it("fails the import with UNSUPPORTED_PLATFORM, the platform, the supported ones and how to build", async () => {
    const preload = join(mkdtempSync(join(tmpdir(), "aibind-platform-")), "freebsd.cjs");
    writeFileSync(preload, 'Object.defineProperty(process, "platform", { value: "freebsd" });');
    const script = `try { require(${JSON.stringify(entry)}); console.log("loaded"); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`;
    const { stdout } = await run(process.execPath, ["--require", preload, "-e", script]);
    const err = JSON.parse(stdout);
    expect(err.code).toBe("UNSUPPORTED_PLATFORM");
    expect(err.message).toMatch(/no prebuilt binary for freebsd-x64/);
    for (const supported of ["linux-x64-gnu", "linux-arm64-musl", "darwin-arm64", "win32-x64-msvc"]) {
      expect(err.message).toContain(supported);
    }
    expect(err.message).toMatch(/rustup\.rs/);
    expect(err.message).toMatch(/napi-rs\/cli@3 build --platform --release/);
  });
});
