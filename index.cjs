// The public surface of @aibind-rs/postgres: the exports of @aibind/postgres, over the
// native binding. Only an export table; the code is in lib/, one module per part, beside
// its native counterpart in src/ (ARCHITECTURE.md):
//   lib/binding.cjs             the native addon (through load-addon.cjs)
//   lib/errors.cjs              PostgresStoreError; native errors become instances
//   lib/options.cjs             argument and option checks          (src/options.rs)
//   lib/store.cjs               what both stores share
//   lib/stream-store.cjs        PostgresStreamStore, readFrom, stopSignal (src/stream_store.rs)
//   lib/appends.cjs             exactly-once appends
//   lib/conversation-store.cjs  PostgresConversationStore          (src/conversation_store.rs)
//   lib/schema.cjs              schemaSql, migrate                   (src/schema.rs)
//   lib/backend.cjs             the backend for a `client` argument  (src/backend/mod.rs)
//   lib/driver.cjs              a JS client's query() for the native side (src/backend/js/)
//   lib/pg.cjs                  what the driver does for node-postgres only
//   lib/client-hub.cjs          what stores on one JS client share; lib/listener.cjs its LISTEN
"use strict";

// The native addon first: where it cannot load, this fails with its own error
// (load-addon.cjs) before anything else runs.
require("./lib/binding.cjs");

const { PostgresStoreError } = require("./lib/errors.cjs");
const { PostgresStreamStore } = require("./lib/stream-store.cjs");
const { PostgresConversationStore } = require("./lib/conversation-store.cjs");
const { wrapPostgresJs, wrapNeon } = require("./lib/driver.cjs");
const { schemaSql, migrate } = require("./lib/schema.cjs");

module.exports = {
  PostgresStoreError,
  PostgresStreamStore,
  PostgresConversationStore,
  wrapPostgresJs,
  wrapNeon,
  schemaSql,
  migrate,
};
