#!/usr/bin/env node
// `npm run test:frameworks`: the packed packages in real apps and the deployments made
// from them (docs/deploy.md). For a SvelteKit app and a Next.js app (App Router), both in
// frameworks/ with pinned versions and lockfiles: `npm ci --engine-strict` (so every
// version supports this Node), install the tarballs as a user would, build for production
// with DATABASE_URL unset, then run two servers of each with it set and check the stream
// end to end over HTTP and SSE. The second server of each is a deployment copied out of
// the project tree: SvelteKit's Docker recipe (`npm ci --omit=dev`), Next's
// `output: "standalone"`; then adapter-vercel's function folder, served alone. Then the
// package in devDependencies (bundled by adapter-node): it serves, and in the Docker
// recipe, where `--omit=dev` leaves it out, it names the fix. A Nitro app's .output/ copied
// out of the tree. Last, Bun and Deno (from npm)
// run scripts/smoke.mjs. The Next servers export their spans to a receiver here (frameworks/otel.mjs).
// Needs DATABASE_URL (the npm script provides one).
import { spawn, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { migrate } from "../index.js";
import { packTarballs } from "../scripts/pack.mjs";
import { checkStop, checkStreams } from "./checks.mjs";
import { expectAddon, nextStandalone, sveltekitDockerRecipe, vercelFunction } from "./deploy.mjs";
import { checkStoreSpans, otlpReceiver } from "./otel.mjs";

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

/** Starts `cmd` on `port` with DATABASE_URL (and `more`) set; resolves once it answers HTTP. */
async function serve(cmd, args, cwd, port, more = {}) {
  const env = {
    ...buildEnv,
    ...more,
    DATABASE_URL: url,
    PORT: String(port),
    HOST: "127.0.0.1",
    HOSTNAME: "127.0.0.1",
    MODEL_DELAY_MS: "20",
  };
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
const stopAll = () => {
  for (const s of servers.splice(0)) s.stop();
};
try {
  step("packing the main package and the linux-x64-gnu package");
  const { main, platformTgz } = packTarballs(work, { onlyBuiltPlatform: true });
  await migrate(url);

  /** A fresh copy of frameworks/<name>: `npm ci` from its lockfile, then the tarballs. */
  const app = (name) => {
    const dir = join(work, name);
    cpSync(join(root, "frameworks", name), dir, {
      recursive: true,
      filter: (src) => !/[\\/](node_modules|build|\.next|\.svelte-kit|\.vercel|\.output|\.nitro)$/.test(src),
    });
    run("npm", ["ci", "--engine-strict", "--ignore-scripts"], dir);
    run("npm", ["install", "--ignore-scripts", main, platformTgz], dir);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
    if (!pkg.dependencies?.["@aibind-rs/postgres"]) throw new Error(`${name}: the package is not in dependencies`);
    return dir;
  };
  const POST = {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: "x" }),
  };

  // ------------------------------------------------------------------- SvelteKit
  step("SvelteKit: npm ci + the tarballs");
  const kit = app("sveltekit");
  step("SvelteKit: svelte-kit sync && tsc (strict)");
  run("npm", ["run", "check"], kit);
  step("SvelteKit: vite build (adapter-node) with DATABASE_URL unset");
  run("npm", ["run", "build"], kit);
  step("SvelteKit: the Docker recipe (build/, package.json, lockfile; npm ci --omit=dev)");
  const docker = sveltekitDockerRecipe(kit, join(work, "sveltekit-docker"), run);
  step("SvelteKit: `node build` in the app and in the Docker folder, streams over SSE");
  servers.push(
    await serve(process.execPath, ["build"], kit, 4311),
    await serve(process.execPath, ["build"], docker, 4312),
  );
  await checkStreams("SvelteKit", servers[0], servers[1]);
  await checkStop("SvelteKit", servers[0], servers[1]);
  stopAll();

  step("SvelteKit: adapter-vercel; its function folder copied out and served alone");
  rmSync(join(kit, "build"), { recursive: true, force: true });
  run("npm", ["run", "build"], kit, { env: { ...buildEnv, ADAPTER: "vercel" } });
  const fn = vercelFunction(kit, join(work, "vercel-function"));
  servers.push(
    await serve(process.execPath, ["build"], docker, 4313),
    await serve(process.execPath, [join(root, "frameworks", "vercel-serve.mjs"), fn], fn, 4314),
  );
  await checkStreams("SvelteKit adapter-vercel function", servers[0], servers[1]);
  stopAll();

  step("SvelteKit: the package in devDependencies (adapter-node bundles it)");
  const pkgPath = join(kit, "package.json");
  const pkg = JSON.parse(readFileSync(pkgPath, "utf8"));
  pkg.devDependencies = { ...pkg.devDependencies, ...pkg.dependencies };
  delete pkg.dependencies;
  writeFileSync(pkgPath, JSON.stringify(pkg, null, 2));
  run("npm", ["install", "--ignore-scripts"], kit); // the lockfile, as `npm install -D` leaves it
  rmSync(join(kit, "build"), { recursive: true, force: true });
  run("npm", ["run", "build"], kit);
  // Installed where it runs: the bundled copy loads the installed package's addon.
  servers.push(
    await serve(process.execPath, ["build"], kit, 4315),
    await serve(process.execPath, ["build"], kit, 4316),
  );
  await checkStreams("SvelteKit, package in devDependencies", servers[0], servers[1]);
  stopAll();
  // Its Docker recipe leaves it out (--omit=dev): the error names the fix.
  const omitted = sveltekitDockerRecipe(kit, join(work, "sveltekit-docker-dev"), run);
  const bundled = await serve(process.execPath, ["build"], omitted, 4317);
  servers.push(bundled);
  const refused = await fetch(`${bundled.base}/api/stream`, POST);
  if (refused.status !== 500) throw new Error(`SvelteKit, bundled, not installed: POST answered ${refused.status}`);
  await new Promise((resolve) => setTimeout(resolve, 200));
  for (const needed of ["was bundled", 'install it into "dependencies"', "not -D", "--omit=dev", omitted]) {
    if (!bundled.log().includes(needed))
      throw new Error(`SvelteKit, bundled, not installed: the server's error lacks ${needed}:\n${bundled.log()}`);
  }
  stopAll();

  // --------------------------------------------------------------------- Next.js
  step("Next.js: npm ci + the tarballs");
  const next = app("next");
  // Next's Docker recipe: the app's config (as the README shows it) plus `output: "standalone"`.
  writeFileSync(
    join(next, "next.config.mjs"),
    'export default { output: "standalone", serverExternalPackages: ["@aibind-rs/postgres"] };\n',
  );
  step('Next.js: next build (output: "standalone") with DATABASE_URL unset');
  run("npm", ["run", "build"], next);
  step("Next.js: .next/standalone copied out of the tree; `node server.js` and `next start`, streams over SSE");
  const standalone = nextStandalone(next, join(work, "next-standalone"));
  const nextBin = join(next, "node_modules", "next", "dist", "bin", "next");
  // Both export their spans (instrumentation.ts, @vercel/otel) to a receiver here.
  const otlp = await otlpReceiver();
  servers.push(await serve(process.execPath, ["server.js"], standalone, 4321, otlp.env));
  servers.push(
    await serve(process.execPath, [nextBin, "start", "-p", "4322", "-H", "127.0.0.1"], next, 4322, otlp.env),
  );
  await checkStreams("Next.js", servers[0], servers[1]);
  await checkStop("Next.js", servers[0], servers[1]);
  step("Next.js: the streamed request's trace holds the store's spans under the route's");
  await checkStoreSpans("Next.js with @vercel/otel", otlp);
  otlp.close();
  stopAll();

  step("Next.js: next build without serverExternalPackages");
  writeFileSync(join(next, "next.config.mjs"), 'export default { output: "standalone" };\n');
  rmSync(join(next, ".next"), { recursive: true, force: true });
  const unexternal = run("npm", ["run", "build"], next, { fail: false });
  for (const unwanted of ["@aibind/core", "Module not found", "Unexpected character"]) {
    if (unexternal.output.includes(unwanted))
      throw new Error(
        `Next.js without serverExternalPackages: the build output mentions ${unwanted}:\n${unexternal.output}`,
      );
  }
  // Turbopack, bundling the package, stops at its addon ("node addon ... is not placeable")
  // before any of the package's code runs; a bundler that gets further runs the loader,
  // which fails with BUNDLED naming the setting.
  if (unexternal.status === 0) throw new Error(`Next.js without serverExternalPackages built:\n${unexternal.output}`);
  const named = unexternal.output.includes("BUNDLED")
    ? ['serverExternalPackages: ["@aibind-rs/postgres"]']
    : ["node addon", "node_modules/@aibind-rs/postgres/load-addon.cjs"];
  for (const needed of named) {
    if (!unexternal.output.includes(needed))
      throw new Error(`Next.js without serverExternalPackages: the build error lacks ${needed}:\n${unexternal.output}`);
  }

  // ----------------------------------------------------------------------- Nitro
  step("Nitro (node-server preset): nitro build; .output/ copied out of the tree; a stream round trip");
  const nitro = app("nitro");
  run("npm", ["run", "build"], nitro);
  const output = join(work, "nitro-output");
  cpSync(join(nitro, ".output"), output, { recursive: true });
  expectAddon("Nitro .output", output, join(output, "server", "index.mjs"));
  servers.push(await serve(process.execPath, [join("server", "index.mjs")], output, 4331));
  const roundTrip = await (await fetch(`${servers[0].base}/api/roundtrip`)).json();
  if (JSON.stringify(roundTrip.chunks) !== '["1:Hel","2:lo","3:!"]' || roundTrip.status !== "done")
    throw new Error(`Nitro: /api/roundtrip answered ${JSON.stringify(roundTrip)}:\n${servers[0].log()}`);
  stopAll();

  // ---------------------------------------------------------------- Bun and Deno
  step("Bun and Deno (npm packages bun, deno): scripts/smoke.mjs through a connection string and a pg.Pool");
  const runtimes = app("runtimes");
  cpSync(join(root, "scripts", "smoke.mjs"), join(runtimes, "smoke.mjs"));
  const env = { ...buildEnv, DATABASE_URL: url, AIBIND_PACKAGE: "@aibind-rs/postgres" };
  const bun = join(runtimes, "node_modules", "@oven", "bun-linux-x64", "bin", "bun");
  const deno = join(runtimes, "node_modules", "@deno", "linux-x64-glibc", "deno");
  console.log(run(bun, ["smoke.mjs"], runtimes, { env }).output.trim());
  console.log(run(deno, ["run", "-A", "smoke.mjs"], runtimes, { env }).output.trim());

  step(
    "OK (SvelteKit: adapter-node in the tree and as its Docker recipe, adapter-vercel's function alone, devDependencies; " +
      "Next.js: standalone copied out and next start, its OpenTelemetry trace; Nitro's .output copied out; builds without DATABASE_URL, SSE with id/Last-Event-ID/?after=, " +
      "live joins, two servers; misconfigurations name the fix; Bun and Deno round trips)",
  );
} finally {
  stopAll();
  rmSync(work, { recursive: true, force: true });
}
