// File tracing: @vercel/nft is what Next.js `output: "standalone"`, Vercel, SvelteKit's
// adapter-vercel and Nitro use to decide which files of node_modules a deployment holds.
// Its trace of an app that imports the package must reach binding.cjs and the native
// addon, whether built in the package's folder or installed as the platform package.
import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { nodeFileTrace } from "@vercel/nft";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const here = `${process.platform}-${process.arch}${process.platform === "linux" ? "-gnu" : ""}`;
const addon = `aibind-postgres.${here}.node`;

/** An app with the package installed as npm installs it: the main package and the platform package. */
const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function installedApp() {
  const app = mkdtempSync(join(tmpdir(), "aibind-trace-"));
  made.push(app);
  const pkg = join(app, "node_modules", "@aibind-rs", "postgres");
  mkdirSync(pkg, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { files: string[] };
  for (const file of manifest.files) {
    if (file.endsWith("/")) cpSync(join(root, file), join(pkg, file), { recursive: true });
    else {
      mkdirSync(dirname(join(pkg, file)), { recursive: true });
      copyFileSync(join(root, file), join(pkg, file));
    }
  }
  copyFileSync(join(root, "package.json"), join(pkg, "package.json"));
  const platform = join(app, "node_modules", "@aibind-rs", `postgres-${here}`);
  mkdirSync(platform, { recursive: true });
  copyFileSync(join(root, "npm", here, "package.json"), join(platform, "package.json"));
  copyFileSync(join(root, addon), join(platform, addon));
  writeFileSync(join(app, "server.mjs"), 'import { PostgresStreamStore } from "@aibind-rs/postgres";\nconsole.log(PostgresStreamStore);\n');
  writeFileSync(join(app, "server.cjs"), 'const { migrate } = require("@aibind-rs/postgres");\nconsole.log(migrate);\n');
  return app;
}

async function trace(app: string, entry: string) {
  const { fileList } = await nodeFileTrace([join(app, entry)], { base: app });
  return [...fileList].map((f) => f.replaceAll("\\", "/"));
}

describe("@vercel/nft's trace", () => {
  const app = installedApp();
  const pkg = "node_modules/@aibind-rs/postgres";
  const platform = `node_modules/@aibind-rs/postgres-${here}`;

  for (const entry of ["server.mjs", "server.cjs"]) {
    it(`of an app's ${entry} reaches binding.cjs and the platform package's addon`, async () => {
      const files = await trace(app, entry);
      for (const needed of [
        `${pkg}/package.json`,
        `${pkg}/load-addon.cjs`,
        `${pkg}/binding.cjs`,
        `${platform}/package.json`,
        `${platform}/${addon}`,
      ]) {
        expect(files, needed).toContain(needed);
      }
      // What the app does not need is left out: the CLI and the Rust source.
      expect(files).not.toContain(`${pkg}/cli.mjs`);
      expect(files.filter((f) => f.startsWith(`${pkg}/src/`))).toEqual([]);
    });
  }

  it("of the package built from source reaches the addon in its folder", async () => {
    const files = await trace(root, "index.cjs");
    expect(files).toContain("binding.cjs");
    expect(files).toContain(addon);
  });

  it("copied alone (as a tracer deploys it), the app loads the addon", async () => {
    const files = await trace(app, "server.cjs");
    const deployed = mkdtempSync(join(tmpdir(), "aibind-traced-"));
    made.push(deployed);
    for (const file of files) {
      mkdirSync(join(deployed, file, ".."), { recursive: true });
      copyFileSync(join(app, file), join(deployed, file));
    }
    const out = execFileSync(process.execPath, [join(deployed, "server.cjs")], { cwd: tmpdir(), encoding: "utf8" });
    expect(out).toMatch(/migrate/);
  });
});
