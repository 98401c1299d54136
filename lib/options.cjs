// Checks of what the caller passes, before anything reaches the native side (which checks
// again, src/options.rs): argument types and texts, option types, the missing client.
"use strict";

const { storeError, translate } = require("./errors.cjs");

function describe(value) {
  if (value === null || value === undefined) return String(value);
  if (typeof value === "number" && Number.isNaN(value)) return "NaN";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return "a string";
  return `a ${typeof value}`;
}

function invalid(message) {
  return storeError("INVALID_ARGUMENT", message);
}

const wellFormed =
  typeof String.prototype.isWellFormed === "function"
    ? (value) => value.isWellFormed()
    : (value) => !/\p{Surrogate}/u.test(value);

function text(name, value) {
  if (typeof value !== "string") throw invalid(`${name} must be a string, got ${describe(value)}`);
  if (!wellFormed(value)) {
    throw invalid(
      `${name} contains a lone UTF-16 surrogate (U+D800 to U+DFFF without its pair), which ` +
        "UTF-8 and so PostgreSQL cannot store; it would be changed, so it is refused",
    );
  }
  return value;
}

function seqArgument(value) {
  if (value === undefined || value === null) return 0;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value))) {
    return Number(value);
  }
  if (typeof value !== "number" || Number.isNaN(value)) {
    throw invalid(`afterSeq must be a number, got ${describe(value)}`);
  }
  return value;
}

/** undefined, null or "": what `process.env.DATABASE_URL` is where it is not set. */
function isMissing(client) {
  return client === undefined || client === null || client === "";
}

function missingClient() {
  return invalid(
    "no connection string or client was given (got undefined, null or an empty string): is " +
      "DATABASE_URL unset? A store may be created without one, as frameworks do while building " +
      "(DATABASE_URL is often unset at build time), but each call needs a PostgreSQL connection " +
      "string or a client with query(sql, params) (a pg.Pool or pg.Client, wrapPostgresJs(sql), wrapNeon(sql))",
  );
}

/** The type of every option either store takes (unknown options are ignored, as by the original). */
const OPTION_TYPES = {
  chunksTable: "string",
  statusTable: "string",
  table: "string",
  conversationsTable: "string",
  pollIntervalMs: "number",
  ttlMs: "number",
  staleAfterMs: "number",
  retryReadsForMs: "number",
  poolSize: "number",
  connectTimeoutMs: "number",
  queryTimeoutMs: "number",
  idleTimeoutMs: "number",
  pooler: "string",
  listenUrl: "string",
  replicaUrl: "string",
  listenHeartbeatMs: "number",
  listen: "boolean",
  synchronousCommit: "boolean",
  notifyBatchMs: "number",
  citus: "boolean",
  diagnosticIds: "boolean",
};

function nativeOptions(options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object") throw invalid(`options must be an object, got ${describe(options)}`);
  if (options.listenUrl instanceof URL) options = { ...options, listenUrl: options.listenUrl.href };
  if (options.replicaUrl instanceof URL) options = { ...options, replicaUrl: options.replicaUrl.href };
  for (const [name, type] of Object.entries(OPTION_TYPES)) {
    const value = options[name];
    if (value !== undefined && value !== null && typeof value !== type) {
      throw storeError("INVALID_OPTION", `option "${name}" must be a ${type}, got ${describe(value)}`);
    }
  }
  return options;
}

function construct(make) {
  try {
    return make();
  } catch (err) {
    throw translate(err);
  }
}

module.exports = { describe, invalid, text, seqArgument, isMissing, missingClient, nativeOptions, construct };
