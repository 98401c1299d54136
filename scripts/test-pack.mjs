#!/usr/bin/env node
// `npm run test:pack`: what a user gets from npm, proved here. Packs the main package (as
// staged for publishing: no scripts, the platform packages as optional dependencies) and
// the linux-x64-gnu platform package (with the addon built in release mode) with `npm
// pack`, installs both into a fresh throwaway app with no Rust toolchain on its PATH
// (and checks npm found no install script to warn about), then from that app: imports the package from ESM and from
// CommonJS, migrates a schema and runs a stream end to end (append, live read, replay)
// and a conversation. A second app gets the main package alone: its import must fail with
// a message naming the platform, the supported ones and how to build from source.
// Needs DATABASE_URL (the npm script provides a throwaway PostgreSQL).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import process from "node:process";
import { packTarballs, platform } from "./pack.mjs";
import platformNames from "../lib/platform.cjs";

const { supportedPlatforms } = platformNames;

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is not set: run `npm run test:pack`");

const work = mkdtempSync(join(tmpdir(), "aibind-pack-"));
const step = (what) => console.log(`test:pack: ${what}`);
// No Rust on the PATH the app sees: drop every directory that holds cargo or rustc.
const path = (process.env.PATH ?? "")
  .split(delimiter)
  .filter((dir) => !["cargo", "rustc"].some((tool) => existsSync(join(dir, tool))))
  .join(delimiter);
const appEnv = {
  ...process.env,
  PATH: path,
  npm_config_ignore_scripts: "true",
  npm_config_audit: "false",
  npm_config_fund: "false",
};
const sh = (cmd, args, cwd, env = appEnv) =>
  execFileSync(cmd, args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

try {
  step(`packing the main package (staged) and @aibind-rs/postgres-${platform} with the release addon`);
  const { main, platformTgz, version: mainVersion } = packTarballs(work);

  step("the published manifest: no scripts, every platform package as an optional dependency");
  const manifest = JSON.parse(sh("tar", ["xzfO", main, "package/package.json"], work));
  if (manifest.scripts !== undefined)
    throw new Error(`the packed package.json carries scripts: ${JSON.stringify(manifest.scripts)}`);
  if (manifest.devDependencies !== undefined || manifest.allowScripts !== undefined)
    throw new Error("the packed package.json carries dev-only fields");
  // Every platform of package.json's napi.targets, by name (stage-package.mjs sorts them).
  const platforms = supportedPlatforms(
    JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")),
  ).sort();
  const wantOptional = Object.fromEntries(platforms.map((p) => [`@aibind-rs/postgres-${p}`, mainVersion]));
  if (JSON.stringify(manifest.optionalDependencies) !== JSON.stringify(wantOptional)) {
    throw new Error(
      `optionalDependencies: ${JSON.stringify(manifest.optionalDependencies)}, expected ${JSON.stringify(wantOptional)}`,
    );
  }

  const files = sh("tar", ["tzf", main], work).split("\n");
  // Every module under lib/ (index.cjs requires them).
  const lib = readdirSync(new URL("../lib", import.meta.url)).map((f) => `package/lib/${f}`);
  for (const needed of [
    "package/index.js",
    "package/index.cjs",
    "package/load-addon.cjs",
    "package/index.d.ts",
    "package/binding.cjs",
    "package/cli.mjs",
    ...lib,
  ]) {
    if (!files.includes(needed)) throw new Error(`the main package lacks ${needed}`);
  }
  if (files.some((f) => f.endsWith(".node"))) throw new Error("the main package must not carry an addon");

  step("installing both into a fresh app as a user does (no Rust on PATH, no install-script warning)");
  for (const tool of ["cargo", "rustc"]) {
    try {
      sh("which", [tool], work);
      throw new Error(`${tool} is still on the app's PATH`);
    } catch (err) {
      if (err.message.includes("still on")) throw err;
    }
  }
  const app = join(work, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "pack-test-app", private: true, version: "1.0.0" }));
  // As a user installs (scripts allowed): npm must find no install script to warn about.
  const installed0 = spawnSync("npm", ["install", "--no-audit", "--no-fund", main, platformTgz], {
    cwd: app,
    env: { ...appEnv, npm_config_ignore_scripts: "false" },
    encoding: "utf8",
  });
  if (installed0.status !== 0) throw new Error(`npm install failed: ${installed0.stderr}`);
  if (/install-scripts|allowScripts|install script/i.test(installed0.stdout + installed0.stderr)) {
    throw new Error(`installing the tarball warned about install scripts:\n${installed0.stderr}`);
  }
  const installed = readdirSync(join(app, "node_modules", "@aibind-rs")).sort();
  if (installed.join() !== ["postgres", `postgres-${platform}`].join()) throw new Error(`installed: ${installed}`);

  const schema = `pack_${process.pid}`;
  const tables = {
    chunksTable: `${schema}.chunks`,
    statusTable: `${schema}.status`,
    conversationsTable: `${schema}.convs`,
  };
  writeFileSync(
    join(app, "esm.mjs"),
    `import { PostgresStreamStore, PostgresConversationStore, migrate } from "@aibind-rs/postgres";
     const url = process.env.DATABASE_URL;
     const t = ${JSON.stringify(tables)};
     await migrate(url, t);
     const streams = new PostgresStreamStore(url, { chunksTable: t.chunksTable, statusTable: t.statusTable });
     await streams.create("s");
     const live = (async () => { const got = []; for await (const c of streams.readFrom("s", 0)) got.push(c.data); return got.join(""); })();
     for (const token of ["Hello", ", ", "world"]) await streams.append("s", token);
     await streams.complete("s");
     const late = []; for await (const c of streams.readFrom("s", 1)) late.push(c.seq);
     const conversations = new PostgresConversationStore(url, { table: t.conversationsTable });
     await conversations.saveJSON("c", '{"messages":[]}');
     console.log(JSON.stringify({ live: await live, late, status: await streams.getStatus("s"), chat: await conversations.loadJSON("c") }));
     await streams.close(); await conversations.close();`,
  );
  writeFileSync(
    join(app, "cjs.cjs"),
    `const { PostgresStreamStore, schemaSql } = require("@aibind-rs/postgres");
     (async () => {
       const store = new PostgresStreamStore(process.env.DATABASE_URL, ${JSON.stringify({ chunksTable: tables.chunksTable, statusTable: tables.statusTable })});
       await store.create("cjs");
       const seq = await store.append("cjs", "from require");
       console.log(JSON.stringify({ seq, sql: schemaSql().includes("aibind_stream_chunks") }));
       await store.close();
     })();`,
  );

  step("running a stream end to end from ESM");
  const esm = JSON.parse(sh(process.execPath, ["esm.mjs"], app));
  const wantEsm = {
    live: "Hello, world",
    late: [2, 3],
    status: { state: "done", totalChunks: 3 },
    chat: '{"messages":[]}',
  };
  if (JSON.stringify(esm) !== JSON.stringify(wantEsm)) throw new Error(`ESM run: ${JSON.stringify(esm)}`);

  step("running from CommonJS (require)");
  const cjs = JSON.parse(sh(process.execPath, ["cjs.cjs"], app));
  if (cjs.seq !== 1 || cjs.sql !== true) throw new Error(`CJS run: ${JSON.stringify(cjs)}`);

  step("the command: npx aibind-postgres migrate --print");
  const printed = sh("npx", ["--no-install", "aibind-postgres", "migrate", "--print"], app);
  if (!printed.includes("CREATE TABLE IF NOT EXISTS aibind_stream_status"))
    throw new Error("the command printed no schema");

  step("without the platform package: a clear error on import");
  const bare = join(work, "bare");
  execFileSync("mkdir", ["-p", bare]);
  writeFileSync(
    join(bare, "package.json"),
    JSON.stringify({ name: "pack-test-bare", private: true, version: "1.0.0" }),
  );
  sh("npm", ["install", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=optional", main], bare);
  let message = "";
  try {
    sh(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        'import("@aibind-rs/postgres").catch((e) => { console.error(e.code + ": " + e.message); process.exit(3); })',
      ],
      bare,
    );
  } catch (err) {
    message = err.stderr;
  }
  for (const needed of [
    "MISSING_PLATFORM_PACKAGE",
    `@aibind-rs/postgres-${platform} is not installed`,
    "darwin-arm64",
    "win32-x64-msvc",
    "rustup.rs",
    "napi-rs/cli",
  ]) {
    if (!message.includes(needed)) throw new Error(`the import error lacks "${needed}": ${message}`);
  }

  const { default: pg } = await import("pg");
  const admin = new pg.Client(url);
  await admin.connect();
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
  console.log(
    "test:pack: OK (staged main + platform package from npm pack, clean manifest, no install-script warning, no Rust, ESM + CommonJS + command, clear error without the binary)",
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
