// Loading the addon where no binary fits: the import fails with a message that names the
// platform, the ones with prebuilt binaries, and how to build from source.
import { execFile } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

// The loader's other failures, each with its own code. A copy of the package's entry
// files in a scratch folder stands for an installed package.
describe("loading the addon", () => {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const copy = (files: Record<string, string> = {}) => {
    const dir = join(mkdtempSync(join(tmpdir(), "aibind-load-")), "node_modules", "@aibind-rs", "postgres");
    mkdirSync(dir, { recursive: true });
    for (const file of ["index.cjs", "load-addon.cjs", "binding.cjs", "package.json", "cli.mjs"]) {
      copyFileSync(join(root, file), join(dir, file));
    }
    cpSync(join(root, "lib"), join(dir, "lib"), { recursive: true });
    for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), content);
    return dir;
  };
  const load = async (args: string[], cwd = tmpdir()) => {
    const script = `try { require(process.argv[1]); console.log("loaded"); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message, name: e.name })); }`;
    const { stdout } = await run(process.execPath, [...args.slice(0, -1), "-e", script, args.at(-1) as string], { cwd });
    const err = stdout.trim() === "loaded" ? { code: "loaded", message: "", name: "" } : (JSON.parse(stdout) as { code: string; message: string; name: string });
    if (err.code !== "loaded") expect(err.name).toBe("PostgresStoreError");
    return err;
  };
  const here = `${process.platform}-${process.arch}${process.platform === "linux" ? "-gnu" : ""}`;

  it("MISSING_PLATFORM_PACKAGE when neither the built addon nor the platform package is there", async () => {
    const err = await load([join(copy(), "index.cjs")]);
    expect(err.code).toBe("MISSING_PLATFORM_PACKAGE");
    expect(err.message).toContain(`@aibind-rs/postgres-${here} is not installed`);
    expect(err.message).toMatch(/Cannot find module '@aibind-rs\/postgres-/);
    expect(err.message).not.toMatch(/serverExternalPackages/);
  });

  it("NATIVE_LOAD_FAILED, with the cause, when the addon is there but is no addon", async () => {
    const err = await load([join(copy({ [`aibind-postgres.${here}.node`]: "not an ELF file" }), "index.cjs")]);
    expect(err.code).toBe("NATIVE_LOAD_FAILED");
    expect(err.message).toMatch(new RegExp(`could not load its native addon for ${here}: .*(invalid ELF header|too short|not a valid)`, "i"));
  });

  // A bundler's chunk: the loader's code runs under another file name, with a module
  // object that has no require of its own.
  const chunk = (dir: string, source: string) => {
    const file = join(dir, "chunk-1234.js");
    writeFileSync(file, `const m = { exports: {} };\n(function (module, exports, require) {\n${source}\n})(m, m.exports, require);\nm.exports();`);
    return file;
  };
  const loaderSource = () => readFileSync(join(root, "load-addon.cjs"), "utf8").replace(/"\.\/lib\//g, `"${join(root, "lib")}/`);

  it("BUNDLED, naming the fix, when a bundled copy finds no installed package", async () => {
    const app = mkdtempSync(join(tmpdir(), "aibind-bundle-"));
    const err = await load([chunk(app, loaderSource())], app);
    expect(err.code).toBe("BUNDLED");
    for (const fix of ['serverExternalPackages: ["@aibind-rs/postgres"]', 'ssr: { external: ["@aibind-rs/postgres"] }', '"dependencies"', "--omit=dev", "Cloudflare Workers"]) {
      expect(err.message).toContain(fix);
    }
    expect(err.message).toContain(app);
    expect(err.message).not.toContain("@aibind/core");
    expect(err.message).not.toMatch(/Reinstall/);
  });

  it("a bundled copy loads the addon of the package installed where the program runs", async () => {
    // The app's bundle outside node_modules; the package installed in its node_modules.
    const installed = copy();
    const app = join(installed, "..", "..", "..");
    writeFileSync(join(installed, `aibind-postgres.${here}.node`), readFileSync(join(root, `aibind-postgres.${here}.node`)));
    const file = chunk(app, `${loaderSource()}\nconsole.log(typeof m.exports().NativeStreamStore);`);
    const { stdout } = await run(process.execPath, [file], { cwd: tmpdir() });
    expect(stdout.trim()).toBe("function");
    // Not found from the entry file nor the working directory: BUNDLED.
    const elsewhere = mkdtempSync(join(tmpdir(), "aibind-bundle-"));
    writeFileSync(join(elsewhere, "chunk.js"), readFileSync(file));
    expect((await load([join(elsewhere, "chunk.js")], elsewhere)).code).toBe("BUNDLED");
  });

  it("MISSING_FILES, naming the file and outputFileTracingIncludes, where a tracer left binding.cjs out", async () => {
    const dir = copy();
    rmSync(join(dir, "binding.cjs"));
    const err = await load([join(dir, "index.cjs")]);
    expect(err.code).toBe("MISSING_FILES");
    expect(err.message).toContain(join(dir, "binding.cjs"));
    expect(err.message).toContain("outputFileTracingIncludes");
    expect(err.message).not.toMatch(/bundled/);
  });

  it("MISSING_FILES, naming the platform package, in a traced copy without it", async () => {
    // npm installs cli.mjs and the Rust source; a tracer copies only what the entry reaches.
    const dir = copy();
    rmSync(join(dir, "cli.mjs"));
    const err = await load([join(dir, "index.cjs")]);
    expect(err.code).toBe("MISSING_FILES");
    expect(err.message).toContain(`@aibind-rs/postgres-${here} is missing`);
    expect(err.message).toContain(`./node_modules/@aibind-rs/postgres-${here}/**`);
  });

  it.runIf(here.startsWith("linux-"))("LIBC_MISMATCH where node_modules holds the other C library's build", async () => {
    const dir = copy();
    const other = here.replace(/-gnu$/, "-musl");
    const pkg = join(dir, "..", `postgres-${other}`);
    mkdirSync(pkg);
    writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: `@aibind-rs/postgres-${other}`, version: "0.1.0", main: "x.node" }));
    const err = await load([join(dir, "index.cjs")]);
    expect(err.code).toBe("LIBC_MISMATCH");
    expect(err.message).toContain(`node_modules holds the ${other} build`);
    expect(err.message).toContain("npm install --os=linux");
    expect(err.message).toContain("inside the runtime image");
  });

  it.runIf(here.endsWith("-gnu"))("GLIBC_TOO_OLD, naming the floor, when the binary needs a newer glibc than this one", async () => {
    // The real binary with its glibc version needs renamed to a glibc that does not exist
    // (same length): the dynamic loader refuses it as it would on an older system.
    const binary = readFileSync(join(root, `aibind-postgres.${here}.node`));
    const patched = Buffer.from(binary.toString("latin1").replace(/GLIBC_2\./g, "GLIBC_9."), "latin1");
    const dir = copy();
    writeFileSync(join(dir, `aibind-postgres.${here}.node`), patched);
    const err = await load([join(dir, "index.cjs")]);
    expect(err.code).toBe("GLIBC_TOO_OLD");
    expect(err.message).toMatch(/needs glibc 9\.\d+/);
    expect(err.message).toContain("glibc 2.17 or newer");
  });

  it("BUNDLED when a module runner read the .node file as JavaScript", async () => {
    // What a bundler's or module runner's require of a .node file throws.
    const dir = copy({ "binding.cjs": "throw new SyntaxError(\"Unexpected character '\\\\u{7f}'\");" });
    const err = await load([join(dir, "index.cjs")]);
    expect(err.code).toBe("BUNDLED");
    expect(err.message).toMatch(/Unexpected character/);
  });
});
