#!/usr/bin/env node
// The `aibind-postgres` command: `npx @aibind-rs/postgres migrate --url ...` creates what is
// missing of the stores' tables (idempotent); `--print` writes the SQL instead, for
// Drizzle, Prisma or plain migration files.
import process from "node:process";
import { migrate, schemaSql } from "./index.js";

const usage = `usage: aibind-postgres migrate [--url <connection string>] [--print] [--citus]
                       [--chunks-table <name>] [--status-table <name>] [--conversations-table <name>]

  migrate   create the tables of PostgresStreamStore and PostgresConversationStore, and
            the indexes that keep cleanup() fast, where missing (safe to run again)
  --url     the database (default: $DATABASE_URL)
  --print   print the SQL instead of running it
  --citus   also distribute the tables with Citus (colocated, by stream id and session id)
            and create the functions the stores call there (docs/citus.md)
  --*-table table names, plain or schema-qualified (defaults: aibind_stream_chunks,
            aibind_stream_status, aibind_conversations)`;

function fail(message) {
  console.error(`aibind-postgres: ${message}\n\n${usage}`);
  process.exit(2);
}

const [command, ...rest] = process.argv.slice(2);
if (command === "--help" || command === "-h" || command === "help") {
  console.log(usage);
  process.exit(0);
}
if (command !== "migrate") fail(command ? `unknown command "${command}"` : "no command given");

const flags = { print: false, citus: false };
const names = {
  "--url": "url",
  "--chunks-table": "chunksTable",
  "--status-table": "statusTable",
  "--conversations-table": "conversationsTable",
};
for (let i = 0; i < rest.length; i++) {
  const [flag, inline] = rest[i].split(/=(.*)/s, 2);
  if (flag === "--print") flags.print = true;
  else if (flag === "--citus") flags.citus = true;
  else if (flag in names) {
    const value = inline ?? rest[++i];
    if (value === undefined || value.startsWith("--")) fail(`${flag} needs a value`);
    flags[names[flag]] = value;
  } else fail(`unknown option "${rest[i]}"`);
}

const options = {
  chunksTable: flags.chunksTable,
  statusTable: flags.statusTable,
  conversationsTable: flags.conversationsTable,
  ...(flags.citus ? { citus: true } : {}),
};
try {
  if (flags.print) {
    process.stdout.write(schemaSql(options));
  } else {
    const url = flags.url ?? process.env.DATABASE_URL;
    if (!url) fail("no database: pass --url or set DATABASE_URL");
    const ran = await migrate(url, options);
    console.log(`schema ready: ${ran.length} statements run (each creates only what was missing)`);
  }
} catch (err) {
  // The stores name their options (`option "chunksTable" ...`); here they are flags.
  let message = String(err.message);
  for (const [flag, name] of Object.entries(names)) message = message.replaceAll(`option "${name}"`, flag);
  console.error(`aibind-postgres: ${message}${err.code ? ` (${err.code})` : ""}`);
  process.exit(1);
}
