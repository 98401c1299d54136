// Errors: every error the package raises is a PostgresStoreError. Native errors are
// classified in Rust (src/error.rs) and cross as a unit separator followed by JSON
// `{code, message, sqlState?, retryable, unknown?}`; here they only become instances.
"use strict";

/**
 * `code` (stable), `retryable` (the same call may succeed later as it is), `sqlState`
 * when PostgreSQL reported it, `cause` when another error led to it.
 */
class PostgresStoreError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{ sqlState?: string | null, retryable?: boolean, cause?: unknown }} [details]
   */
  constructor(code, message, { sqlState, retryable = false, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "PostgresStoreError";
    this.code = code;
    if (sqlState) this.sqlState = sqlState;
    this.retryable = retryable;
  }
}

const MARK = "\u001f";

/** Errors whose statement may have taken effect although the call failed (internal). */
const unknownOutcome = new WeakSet();
/** Errors of a statement the server stopped by its own statement_timeout / lock_timeout (internal). */
const stoppedByOwnLimit = new WeakSet();

/**
 * @param {string} code
 * @param {string} message
 * @param {string} [sqlState]
 */
function storeError(code, message, sqlState) {
  return new PostgresStoreError(code, message, { sqlState });
}

/** The stores never create tables: a missing one (42P01) says how to create them. */
const MISSING_TABLE_HINT =
  '; the stores never create their tables: run `npx @aibind-rs/postgres migrate --url "$DATABASE_URL"` ' +
  "(or `await migrate(client)` in your code) once before using them";

/**
 * PostgreSQL's message as it is, and after it what to do where that is known.
 * @param {string} message
 * @param {string | undefined} sqlState
 */
function withHint(message, sqlState) {
  return sqlState === "42P01" ? `${message}${MISSING_TABLE_HINT}` : message;
}

/**
 * A native error (`MARK` + JSON) as a PostgresStoreError; anything else as it is.
 * @param {unknown} err
 * @returns {any} a PostgresStoreError, or `err` itself
 */
function translate(err) {
  if (err instanceof Error && typeof err.message === "string" && err.message.startsWith(MARK)) {
    try {
      const { code, message, sqlState, retryable, unknown, ownLimit } = JSON.parse(err.message.slice(1));
      const translated = new PostgresStoreError(code, withHint(message, sqlState), { sqlState, retryable });
      if (unknown) unknownOutcome.add(translated);
      if (ownLimit) stoppedByOwnLimit.add(translated);
      return translated;
    } catch {
      return err;
    }
  }
  return err;
}

/** Whether the failed call's statement may still have taken effect. */
function outcomeUnknown(err) {
  return unknownOutcome.has(err);
}

/** Whether the server stopped the statement by its own time limit: the same call would hit it again. */
function ownLimit(err) {
  return stoppedByOwnLimit.has(err);
}

/**
 * Runs `call`, turning native errors into PostgresStoreErrors.
 * @template T
 * @param {() => T | Promise<T>} call
 * @returns {Promise<T>}
 */
async function run(call) {
  try {
    return await call();
  } catch (err) {
    throw translate(err);
  }
}

module.exports = { PostgresStoreError, storeError, translate, outcomeUnknown, ownLimit, run };
