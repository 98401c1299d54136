// schemaSql and migrate (src/schema.rs holds the DDL's assembly, src/sql.rs its text).
"use strict";

const { schemaStatements } = require("./binding.cjs");
const { run } = require("./errors.cjs");
const { nativeOptions, construct } = require("./options.cjs");
const { backendFor, hubOf } = require("./backend.cjs");

function schemaOptions(options) {
  const opts = nativeOptions(options);
  return {
    chunksTable: opts.chunksTable,
    statusTable: opts.statusTable,
    conversationsTable: opts.conversationsTable ?? opts.table,
    citus: opts.citus,
  };
}

/**
 * The DDL of the stores' tables (the original's schema) for the chosen table names, with
 * the indexes that keep `cleanup` fast on large tables. Every statement is idempotent.
 * Options: `chunksTable`, `statusTable`, `conversationsTable`; `citus: true` also
 * distributes the tables with Citus and creates the functions the stores call there.
 */
function schemaSql(options) {
  return `${construct(() => schemaStatements(schemaOptions(options))).join(";\n\n")};\n`;
}

/**
 * Creates what is missing of the schema through `client` (a connection string or any
 * PostgresClient), statement by statement; running it again changes nothing. Resolves the
 * statements it ran.
 */
async function migrate(client, options) {
  const statements = construct(() => schemaStatements(schemaOptions(options)));
  const backend = construct(() => backendFor(client, nativeOptions(options)));
  try {
    for (const sql of statements) await run(() => backend.execute(sql));
  } finally {
    const shared = hubOf.get(backend);
    shared?.hub.remove(shared.token);
    await backend.close();
  }
  return statements;
}

module.exports = { schemaSql, migrate };
