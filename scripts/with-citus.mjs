#!/usr/bin/env node
// Runs a command against a throwaway Citus cluster: a coordinator and two workers, each
// its own PostgreSQL 15 on a free loopback port in its own temp directory, all stopped
// and removed when the command ends. The command gets DATABASE_URL (the coordinator's
// database `aibind_test`) and CITUS_WORKER_URLS (the workers', comma-separated).
//
//   node scripts/with-citus.mjs vitest run --config __test__/citus/vitest.config.ts
//
// Needs Debian's PostgreSQL 15 (/usr/lib/postgresql/15, or AIBIND_CITUS_PG_BIN) with the
// Citus extension. When Citus is not installed, it is built from the source in
// ../shared/vendor/ (build-citus.sh: root or sudo, about a minute). As root, the servers
// run as the `postgres` user.
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { freePort } from "./throwaway-postgres.mjs";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const bin = process.env.AIBIND_CITUS_PG_BIN ?? "/usr/lib/postgresql/15/bin";
const pkglib = join(dirname(bin), "lib");
const vendor = join(root, "..", "shared", "vendor");
const DB = "aibind_test";

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error("usage: node scripts/with-citus.mjs <command> [args...]");
  process.exit(2);
}

/** Citus installed into that PostgreSQL, or built from ../shared/vendor/ now. */
function ensureCitus() {
  if (existsSync(join(pkglib, "citus.so")) && existsSync(join(bin, "initdb"))) return;
  const script = join(vendor, "build-citus.sh");
  if (!existsSync(script)) {
    throw new Error(
      `Citus is not installed in ${pkglib} and ${script} is missing: install Citus for PostgreSQL 15 ` +
        `(or put its source and build-citus.sh in ../shared/vendor/), or set AIBIND_CITUS_PG_BIN`,
    );
  }
  console.error("[with-citus] building Citus from ../shared/vendor/ (about a minute)");
  execFileSync("bash", [script], { stdio: "inherit" });
}

/** As root, the ids of the `postgres` user (PostgreSQL will not run as root). */
function serverIds() {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return {};
  const id = (flag) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

async function waitUntilReady(url, node) {
  const until = Date.now() + 60_000;
  for (;;) {
    if (node.child.exitCode !== null) throw new Error(`a Citus node exited during start-up:\n${node.log}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > until) throw new Error(`a Citus node did not start in 60 s: ${err.message}\n${node.log}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Starts one node: initdb, then postgres with Citus preloaded. */
async function startNode(parent, name, ids) {
  const data = join(parent, name);
  mkdirSync(data, { mode: 0o700 });
  if (ids.uid !== undefined) chownSync(data, ids.uid, ids.gid);
  const initdb = ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"];
  execFileSync(join(bin, "initdb"), initdb, { ...ids, stdio: ["ignore", "ignore", "pipe"] });
  const port = await freePort();
  const settings = {
    shared_preload_libraries: "citus",
    listen_addresses: "127.0.0.1",
    unix_socket_directories: "",
    max_connections: "300",
    fsync: "off",
    full_page_writes: "off",
    // Loopback between nodes, no TLS (the servers have no certificates).
    "citus.node_conninfo": "sslmode=disable",
  };
  const flags = Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
  const child = spawn(join(bin, "postgres"), ["-D", data, "-p", String(port), ...flags], {
    ...ids,
    // Not root's HOME: libpq in the server (connections between nodes) looks there.
    env: { ...process.env, HOME: parent },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const node = { name, port, child, log: "", url: `postgres://postgres@127.0.0.1:${port}` };
  child.stderr.on("data", (d) => {
    node.log = (node.log + d).slice(-4000);
  });
  await waitUntilReady(`${node.url}/postgres`, node);
  return node;
}

async function sql(url, text) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}

async function stopNode(node) {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return;
  const exited = new Promise((resolve) => node.child.once("exit", resolve));
  node.child.kill("SIGINT");
  const timer = setTimeout(() => node.child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

function run(env) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: "inherit", env });
    const forward = (signal) => child.kill(signal);
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

ensureCitus();
const parent = mkdtempSync(join(tmpdir(), "aibind-citus-"));
chmodSync(parent, 0o755);
const ids = serverIds();
/** @type {any[]} */
const nodes = [];
const killAll = () => nodes.forEach((n) => n.child.kill("SIGKILL"));
process.on("exit", killAll);
let exitCode = 1;
try {
  const started = Date.now();
  for (const name of ["coordinator", "worker1", "worker2"]) nodes.push(await startNode(parent, name, ids));
  const [coordinator, ...workers] = nodes;
  for (const node of nodes) {
    await sql(`${node.url}/postgres`, `CREATE DATABASE ${DB}`);
    await sql(`${node.url}/${DB}`, "CREATE EXTENSION citus");
  }
  const coord = `${coordinator.url}/${DB}`;
  await sql(coord, `SELECT citus_set_coordinator_host('127.0.0.1', ${coordinator.port})`);
  for (const w of workers) await sql(coord, `SELECT citus_add_node('127.0.0.1', ${w.port})`);
  const { rows } = await sql(coord, "SELECT extversion FROM pg_extension WHERE extname = 'citus'");
  console.error(
    `[with-citus] Citus ${rows[0].extversion}: coordinator :${coordinator.port}, workers ` +
      `:${workers.map((w) => w.port).join(", :")}, ready in ${Date.now() - started} ms`,
  );
  exitCode = await run({
    ...process.env,
    DATABASE_URL: coord,
    CITUS_WORKER_URLS: workers.map((w) => `${w.url}/${DB}`).join(","),
  });
} catch (err) {
  console.error(`[with-citus] ${err instanceof Error ? err.message : err}`);
} finally {
  await Promise.all(nodes.map(stopNode));
  process.off("exit", killAll);
  rmSync(parent, { recursive: true, force: true });
  console.error("[with-citus] cluster stopped and removed");
}
process.exit(exitCode);
