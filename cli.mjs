#!/usr/bin/env node
// The `aibind-postgres` command: `migrate` (the stores' tables), and for an operator
// `streams`, `tail <id>` and `stats`. Arguments and help: lib/cli-args.cjs; what each
// command does: lib/cli-commands.cjs; its SQL: lib/inspect.cjs; text output:
// lib/cli-print.cjs. Exit codes: 0 done, 1 the database said no, 2 bad input; tail:
// 3 failed, 4 stopped, 5 no such stream, 130 interrupted.
import process from "node:process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { COMMANDS, UsageError, overview, helpOf, parse, flagged } = require("./lib/cli-args.cjs");

const [command, ...rest] = process.argv.slice(2);
const wantsJson = rest.includes("--json");

// `| head` closes stdout early: that is not an error.
process.stdout.on("error", (err) => {
  if (err.code === "EPIPE") process.exit(0);
  throw err;
});

/** Says what went wrong on stderr (JSON with --json) and exits with `exitCode`. */
function failWith(err, exitCode) {
  const code = err.code ?? "INTERNAL";
  if (wantsJson) {
    const error = { code, message: err.message, ...(err.sqlState ? { sqlState: err.sqlState } : {}) };
    process.stderr.write(`${JSON.stringify({ error })}\n`);
  } else {
    const usage =
      exitCode === 2
        ? `\n\n${err.command ? `usage: ${COMMANDS[err.command].usage}\n(aibind-postgres ${err.command} --help for more)` : overview()}`
        : "";
    process.stderr.write(`aibind-postgres: ${err.message} (${code})${usage}\n`);
  }
  process.exit(exitCode);
}

if (command === undefined || command === "--help" || command === "-h" || command === "help") {
  if (command === undefined) failWith(new UsageError("no command given"), 2);
  const topic = rest[0];
  if (topic !== undefined && topic in COMMANDS) console.log(helpOf(topic));
  else console.log(overview());
  process.exit(0);
}
if (!Object.hasOwn(COMMANDS, command)) failWith(new UsageError(`unknown command "${command}"`), 2);

try {
  const { flags, positional } = parse(command, rest);
  if (flags.help) {
    console.log(helpOf(command));
    process.exit(0);
  }
  const { RUN } = require("./lib/cli-commands.cjs");
  process.exitCode = await RUN[command](flags, positional);
} catch (err) {
  if (err instanceof UsageError) failWith(err, 2);
  // A bad table name is bad input too; the stores name their options, the command its flags.
  if (err?.code === "INVALID_OPTION" || err?.code === "INVALID_ARGUMENT")
    failWith(Object.assign(flagged(err), { command }), 2);
  if (err?.name === "PostgresStoreError") failWith(err, 1);
  throw err; // a bug: its stack trace is what a report needs
}
