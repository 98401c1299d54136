#!/usr/bin/env node
// `npm run test:frameworks`: the packed packages in real apps. For a SvelteKit app
// (adapter-node) and a Next.js app (App Router), both in frameworks/ with pinned versions
// and lockfiles: `npm ci --engine-strict` (so every version supports this Node), install
// the tarballs as a user would, build for production with DATABASE_URL unset, then run
// two servers of each with it set and check the stream end to end over HTTP and SSE.
// Then what a misconfigured app gets: Next without serverExternalPackages, SvelteKit with
// the package in devDependencies. Needs DATABASE_URL (the npm script provides one).
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { migrate } from "../index.js";
import { packTarballs } from "../scripts/pack.mjs";
import { checkStop, checkStreams } from "./checks.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is not set: run `npm run test:frameworks`");
const started = performance.now();
const step = (what) => console.log(`test:frameworks: ${what} (${((performance.now() - started) / 1000).toFixed(1)}s)`);

const { DATABASE_URL: _unset, ...buildEnv } = process.env;
Object.assign(buildEnv, {
  NEXT_TELEMETRY_DISABLED: "1",
  npm_config_audit: "false",
  npm_config_fund: "false",
  npm_config_update_notifier: "false",
});

function run(cmd, args, cwd, { env = buildEnv, fail = true } = {}) {
  const result = spawnSync(cmd, args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const output = `${result.stdout}${result.stderr}`;
  if (fail && result.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed in ${cwd}:\n${output}`);
  return { status: result.status, output };
}

/** Starts `cmd` on `port` with DATABASE_URL set; resolves once it answers HTTP. */
async function serve(cmd, args, cwd, port) {
  const env = { ...buildEnv, DATABASE_URL: url, PORT: String(port), HOST: "127.0.0.1", MODEL_DELAY_MS: "20" };
  const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  const server = { base: `http://127.0.0.1:${port}`, log: () => log, stop: () => child.kill("SIGTERM") };
  for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited with ${child.exitCode}:\n${log}`);
    try {
      await fetch(server.base);
      return server;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  child.kill("SIGKILL");
  throw new Error(`${cmd} did not answer on ${port}:\n${log}`);
}

const work = mkdtempSync(join(tmpdir(), "aibind-frameworks-"));
const servers = [];
try {
  step("packing the main package and the linux-x64-gnu package");
  const { main, platformTgz } = packTarballs(work);
  await migrate(url);

  /** A fresh copy of frameworks/<name>: `npm ci` from its lockfile, then the tarballs. */
  const app = (name) => {
    const dir = join(work, name);
    cpSync(join(root, "frameworks", name), dir, {
      recursive: true,
      filter: (src) => !/[\\/](node_modules|build|\.next|\.svelte-kit)$/.test(src),
    });
    run("npm", ["ci", "--engine-strict", "--ignore-scripts"], dir);
    run("npm", ["install", "--ignore-scripts", main, platformTgz], dir);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    if (!pkg.dependencies?.["@aibind-rs/postgres"]) throw new Error(`${name}: the package is not in dependencies`);
    return dir;
  };

  // ------------------------------------------------------------------- SvelteKit
  step("SvelteKit: npm ci + the tarballs");
  const kit = app("sveltekit");
  step("SvelteKit: svelte-kit sync && tsc (strict)");
  run("npm", ["run", "check"], kit);
  step("SvelteKit: vite build (adapter-node) with DATABASE_URL unset");
  run("npm", ["run", "build"], kit);
  step("SvelteKit: two servers (node build), streams over SSE");
  servers.push(
    await serve(process.execPath, ["build"], kit, 4311),
    await serve(process.execPath, ["build"], kit, 4312),
  );
  await checkStreams("SvelteKit", servers[0], servers[1]);
  await checkStop("SvelteKit", servers[0], servers[1]);
  for (const s of servers.splice(0)) s.stop();

  step("SvelteKit: the package in devDependencies (adapter-node bundles it)");
  const pkgPath = join(kit, "package.json");
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8"));
  pkg.devDependencies = { ...pkg.devDependencies, ...pkg.dependencies };
  delete pkg.dependencies;
  writeFileSync(pkgPath, JSON.stringify(pkg, null, 2));
  rmSync(join(kit, "build"), { recursive: true, force: true });
  run("npm", ["run", "build"], kit);
  const bundled = await serve(process.execPath, ["build"], kit, 4313);
  servers.push(bundled);
  const refused = await fetch(`${bundled.base}/api/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "x" }),
  });
  if (refused.status !== 500) throw new Error(`SvelteKit, bundled: POST answered ${refused.status}`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  for (const needed of [
    "was bundled",
    'install it into "dependencies"',
    "not -D",
    'ssr: { external: ["@aibind-rs/postgres"] }',
  ]) {
    if (!bundled.log().includes(needed))
      throw new Error(`SvelteKit, bundled: the server's error lacks ${needed}:\n${bundled.log()}`);
  }
  for (const s of servers.splice(0)) s.stop();

  // --------------------------------------------------------------------- Next.js
  step("Next.js: npm ci + the tarballs");
  const next = app("next");
  step("Next.js: next build with DATABASE_URL unset");
  run("npm", ["run", "build"], next);
  step("Next.js: two servers (next start), streams over SSE");
  const nextBin = join(next, "node_modules", "next", "dist", "bin", "next");
  servers.push(await serve(process.execPath, [nextBin, "start", "-p", "4321", "-H", "127.0.0.1"], next, 4321));
  servers.push(await serve(process.execPath, [nextBin, "start", "-p", "4322", "-H", "127.0.0.1"], next, 4322));
  await checkStreams("Next.js", servers[0], servers[1]);
  await checkStop("Next.js", servers[0], servers[1]);
  for (const s of servers.splice(0)) s.stop();

  step("Next.js: next build without serverExternalPackages");
  writeFileSync(join(next, "next.config.mjs"), "export default {};\n");
  rmSync(join(next, ".next"), { recursive: true, force: true });
  const unexternal = run("npm", ["run", "build"], next, { fail: false });
  if (unexternal.status === 0)
    throw new Error(
      `Next.js without serverExternalPackages built; expected it to fail naming the fix:\n${unexternal.output}`,
    );
  for (const needed of ["BUNDLED", 'serverExternalPackages: ["@aibind-rs/postgres"]']) {
    if (!unexternal.output.includes(needed))
      throw new Error(`Next.js without serverExternalPackages: the build error lacks ${needed}:\n${unexternal.output}`);
  }
  for (const unwanted of ["@aibind/core", "Module not found", "Unexpected character"]) {
    if (unexternal.output.includes(unwanted))
      throw new Error(
        `Next.js without serverExternalPackages: the build output mentions ${unwanted}:\n${unexternal.output}`,
      );
  }
  step(
    "OK (SvelteKit + Next.js: builds without DATABASE_URL, SSE with id/Last-Event-ID/?after=, live joins, two servers; misconfigurations name the fix)",
  );
} finally {
  for (const s of servers) s.stop();
  rmSync(work, { recursive: true, force: true });
}
