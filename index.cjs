// The public surface of @aibind-rs/postgres: the exports of @aibind/postgres, over the
// native binding. This file carries only what Rust cannot do cleanly: choosing the
// backend from the `client` argument, adapting a JS client's `query`, the async
// generator protocol of `readFrom`, `ChatHistory` from the optional peer @aibind/core,
// and turning native errors into plain `Error`s with `code` (and `sqlState`).
"use strict";

// The native addon, loaded where bundlers cannot follow (load-addon.cjs).
const { NativeBackend, NativeStreamStore, NativeConversationStore, schemaStatements } = require("./load-addon.cjs")();

// ---------------------------------------------------------------------------- errors

const SEP = "\u001f";

/**
 * Errors worth retrying as they are: the database was away or too slow. Not a refusal
 * that will repeat: authentication (SQLSTATE class 28) or a missing database (3D000).
 */
const RETRYABLE = new Set(["CONNECTION_ERROR", "QUERY_TIMEOUT"]);

function storeError(code, message, sqlState) {
  const err = new Error(message);
  err.code = code;
  if (sqlState) err.sqlState = sqlState;
  err.retryable = RETRYABLE.has(code) && !/^(28|3D)/.test(sqlState ?? "");
  return err;
}

/** A native error carries `CODE␟SQLSTATE␟message`; give it back as a plain Error. */
function translate(err) {
  if (err instanceof Error && typeof err.message === "string" && err.message.includes(SEP)) {
    const [code, sqlState, ...rest] = err.message.split(SEP);
    return storeError(code, rest.join(SEP), sqlState);
  }
  return err;
}

async function run(call) {
  try {
    return await call();
  } catch (err) {
    throw translate(err);
  }
}

function describe(value) {
  if (value === null || value === undefined) return String(value);
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

/** A timer that never keeps the process alive. */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref?.());
}

// --------------------------------------------------------------------------- clients

const isObject = (row) => row !== null && typeof row === "object";

function settleRows(result) {
  if (result !== null && typeof result === "object" && Array.isArray(result.rows)) {
    return result.rows;
  }
  const what = describe(result);
  return { malformed: what === "an object" ? "an object without a rows array" : what };
}

function timeoutFailure(ms) {
  return {
    failed: {
      message:
        `the client's query did not settle within queryTimeoutMs (${ms} ms); the database may be ` +
        "overloaded or unreachable, or the client stuck. Retry later; an append that timed out may " +
        "or may not have been stored (getStatus() tells its chunk count)",
      code: "QUERY_TIMEOUT",
    },
  };
}

function settleFailure(err) {
  return {
    failed: {
      message: err instanceof Error ? err.message : String(err),
      code: err !== null && typeof err === "object" && typeof err.code === "string" ? err.code : null,
    },
  };
}

/**
 * The caller's `query` as the native backend calls it: `(sql, params, ticket)`, always
 * settling through `settle(ticket, outcome)` with the rows, `{ failed }` or
 * `{ malformed }`; what `settle` returns (or throws) is what the method resolves (or
 * rejects) with.
 */
function adapt(client, settle, timeoutMs) {
  // pg gives a page's rows as arrays (cheaper to build and to read): `byIndex`.
  const byIndex = isPg(client);
  const send = byIndex ? preparedPg(client) : (sql, params) => client.query(sql, params);
  const query = (sql, params, ticket, byColumn) =>
    new Promise((resolve, reject) => {
      // Settles once: with the outcome, or when the query has taken `timeoutMs`.
      let done = false;
      const finish = (settleNow) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        try {
          resolve(settleNow());
        } catch (err) {
          reject(err);
        }
      };
      const timer = setTimeout(
        () => finish(() => settle(ticket, timeoutFailure(timeoutMs))),
        timeoutMs,
      );
      timer.unref?.();
      let pending;
      try {
        pending = send(sql, params, byColumn != null);
      } catch (err) {
        queueMicrotask(() => finish(() => settle(ticket, settleFailure(err))));
        return;
      }
      Promise.resolve(pending).then(
        (result) =>
          finish(() => {
            const rows = settleRows(result);
            if (byColumn == null || !Array.isArray(rows)) return settle(ticket, rows);
            const columns = rows.every(isObject) ? columnar(rows, byColumn, byIndex) : undefined;
            return settle(ticket, columns || !byIndex ? rows : asObjects(rows, byColumn), columns);
          }),
        (err) => finish(() => settle(ticket, settleFailure(err))),
      );
    });
  if (!isSingleConnection(client)) return query;
  // One connection runs one query at a time: queue them here rather than lean on pg's
  // own queue, which pg deprecates for concurrent calls.
  let tail = Promise.resolve();
  return (sql, params, ticket, byColumn) => {
    const result = tail.then(() => query(sql, params, ticket, byColumn));
    tail = result.catch(() => {});
    return result;
  };
}

/**
 * Many rows (a page of chunks) by column, as the native side asks with `spec`
 * ("name:i,name:t,..."): per integer column a Float64Array (NaN for NULL), per text column
 * the values joined into one string and an Int32Array of their lengths (-1 for NULL). A
 * handful of values cross into Rust instead of several per row. Anything unexpected
 * (a value of the wrong type) gives `undefined`: the rows are then read one by one, and
 * the problem reported there.
 */
const specs = new Map();
function parseSpec(spec) {
  let columns = specs.get(spec);
  if (columns === undefined) {
    columns = spec.split(",").map((c, index) => ({ name: c.slice(0, -2), index, int: c.endsWith(":i") }));
    specs.set(spec, columns);
  }
  return columns;
}

/** Rows that came as arrays (pg's rowMode "array"), as the objects row-by-row reading expects. */
function asObjects(rows, spec) {
  const columns = parseSpec(spec);
  return rows.map((row) => Object.fromEntries(columns.map((c) => [c.name, row?.[c.index]])));
}

function columnar(rows, spec, byIndex) {
  const out = [];
  const n = rows.length;
  for (const { name, index, int } of parseSpec(spec)) {
    const key = byIndex ? index : name;
    if (int) {
      const values = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = rows[i]?.[key];
        if (v === null || v === undefined) values[i] = NaN;
        else if (typeof v === "number" && Number.isInteger(v)) values[i] = v;
        else if (typeof v === "bigint" || (typeof v === "string" && v.trim() !== "" && Number.isInteger(Number(v)))) {
          values[i] = Number(v);
        }
        else return undefined;
      }
      out.push(values);
    } else {
      const lengths = new Int32Array(n);
      let text = "";
      for (let i = 0; i < n; i++) {
        const v = rows[i]?.[key];
        if (typeof v === "string") {
          text += v;
          lengths[i] = v.length;
        } else if (v === null || v === undefined) lengths[i] = -1;
        else return undefined;
      }
      out.push(text, lengths);
    }
  }
  return out;
}

/** A `pg.Pool` or `pg.Client` (or a pg-compatible one, such as Neon's `Pool`). */
function isPg(client) {
  return (
    typeof client.connectionParameters === "object" ||
    (typeof client.Client === "function" && typeof client.totalCount === "number")
  );
}

/**
 * pg's `query` with named statements: each connection parses and plans a statement once,
 * instead of on every call (about 1.6x the appends per second). A pooler that cannot keep
 * prepared statements (PgBouncer in transaction mode before 1.21) answers 26000 or
 * 42P05; the statement is then sent again unnamed, and so is every later one.
 */
function preparedPg(client) {
  const names = new Map();
  let prepare = true;
  const plain = (sql, params, arrays) => client.query(arrays ? { text: sql, values: params, rowMode: "array" } : { text: sql, values: params });
  return (sql, params, arrays) => {
    if (!prepare) return plain(sql, params, arrays);
    let name = names.get(sql);
    if (name === undefined) {
      name = `aibind_${names.size}_${hash(sql)}`;
      names.set(sql, name);
    }
    const query = { name, text: sql, values: params };
    if (arrays) query.rowMode = "array";
    return client.query(query).catch((err) => {
      if (err?.code !== "26000" && err?.code !== "42P05") throw err;
      prepare = false;
      return plain(sql, params, arrays);
    });
  };
}

/** A short, stable hash of a statement's text (FNV-1a), for its name. */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36);
}

/** A `pg.Client` (or a client checked out of a `pg.Pool`): one connection. */
function isSingleConnection(client) {
  return typeof client.connectionParameters === "object" && typeof client.totalCount !== "number";
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

function backendFor(client, options) {
  if (isMissing(client)) throw missingClient();
  if (client instanceof URL) client = client.href;
  if (typeof client === "string") return NativeBackend.connect(client, options);
  if (client !== null && typeof client === "object" && typeof client.query === "function") {
    return NativeBackend.fromQuery((settle, timeoutMs) => adapt(client, settle, timeoutMs), options);
  }
  throw invalid(
    "client must be a PostgreSQL connection string or an object with a query(sql, params) " +
      "method (a pg.Pool or pg.Client, wrapPostgresJs(sql), wrapNeon(sql)), got " +
      describe(client),
  );
}

function nativeOptions(options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object") throw invalid(`options must be an object, got ${describe(options)}`);
  return options;
}

function construct(make) {
  try {
    return make();
  } catch (err) {
    throw translate(err);
  }
}

/**
 * A postgres.js `sql` instance as a PostgresClient. Statements are prepared (and cached
 * by postgres.js) unless the instance was created with `prepare: false`, as needed behind
 * PgBouncer in transaction mode.
 */
function wrapPostgresJs(sql) {
  const prepare = sql?.options?.prepare !== false;
  return {
    async query(text, params = []) {
      return { rows: await sql.unsafe(text, params, { prepare }) };
    },
  };
}

/**
 * A Neon serverless `sql` function as a PostgresClient. Uses `sql.query(text, params)`
 * where the driver has it (@neondatabase/serverless 1.x), else `sql(text, params)`.
 */
function wrapNeon(sql) {
  const call =
    typeof sql?.query === "function" ? (text, params) => sql.query(text, params) : (text, params) => sql(text, params);
  return {
    async query(text, params = []) {
      const result = await call(text, params);
      return { rows: Array.isArray(result) ? result : result?.rows };
    },
  };
}

// ---------------------------------------------------------------------------- stores

/** What both stores share: the native store, cleanup, close. */
const NATIVE = Symbol("native");

class Store {
  #native;
  #closed = false;

  constructor(Native, client, options) {
    const opts = nativeOptions(options);
    if (isMissing(client)) {
      // Frameworks import route modules while building, often with DATABASE_URL unset:
      // construct anyway (options are still checked now), fail on first use.
      const unused = construct(() => NativeBackend.fromQuery(() => () => Promise.reject(missingClient()), opts));
      construct(() => new Native(unused, opts)).close();
      unused.close();
      return; // no #native: every call rejects, saying no client was given
    }
    this.#native = construct(() => new Native(backendFor(client, opts), opts));
  }

  get [NATIVE]() {
    if (this.#native === undefined) {
      throw this.#closed ? storeError("STORE_CLOSED", "this store has been closed; create a new store to keep going") : missingClient();
    }
    return this.#native;
  }

  /** Removes expired rows; resolves how many streams (or conversations) went. */
  cleanup() {
    return run(() => this[NATIVE].cleanup());
  }

  /** Releases the store's connection (a shared pool closes with its last store) and ends its waiting readers. */
  async close() {
    this.#closed = true;
    this.#native?.close();
  }

  get closed() {
    return this.#native?.closed ?? this.#closed;
  }
}

if (typeof Symbol.asyncDispose === "symbol") {
  Store.prototype[Symbol.asyncDispose] = Store.prototype.close;
}

// --------------------------------------------------------------------------- streams

class PostgresStreamStore extends Store {
  constructor(client, options) {
    super(NativeStreamStore, client, options);
  }

  create(id) {
    return run(() => this[NATIVE].create(text("stream id", id)));
  }

  append(id, chunk) {
    return run(() => this[NATIVE].append(text("stream id", id), text("chunk", chunk)));
  }

  async *readFrom(id, afterSeq) {
    const reader = await run(() => this[NATIVE].reader(text("stream id", id), seqArgument(afterSeq)));
    const retryFor = this[NATIVE].retryReadsForMs;
    const fetch = () => {
      const page = run(() => reader.nextPage());
      page.catch(() => {}); // awaited below, unless the reader is left first
      return page;
    };
    try {
      let next = fetch();
      let failingSince = 0;
      let backoff = 50;
      for (;;) {
        let page;
        try {
          page = await next;
        } catch (err) {
          // The database went away or was too slow: try again from the cursor (nothing
          // missed or repeated) until `retryReadsForMs` has passed.
          failingSince ||= Date.now();
          if (!err.retryable || Date.now() - failingSince >= retryFor) throw err;
          await sleep(Math.min(backoff, retryFor));
          backoff = Math.min(backoff * 2, 2000);
          next = fetch();
          continue;
        }
        failingSince = 0;
        backoff = 50;
        if (page === null) return;
        const { seqs, text, ends } = page;
        if (seqs.length === 0) {
          await reader.pause();
          next = fetch();
          continue;
        }
        // More is there already: fetch it while this page is handed out.
        next = reader.hasMore ? fetch() : null;
        for (let i = 0, start = 0; i < seqs.length; start = ends[i++]) {
          yield { seq: seqs[i], data: text.slice(start, ends[i]) };
        }
        next ??= fetch();
      }
    } finally {
      reader.release();
    }
  }

  async getStatus(id) {
    const status = await run(() => this[NATIVE].getStatus(text("stream id", id)));
    if (status === null) return null;
    return { state: status.state, error: status.error ?? undefined, totalChunks: status.totalChunks };
  }

  stop(id) {
    return run(() => this[NATIVE].stop(text("stream id", id)));
  }

  complete(id) {
    return run(() => this[NATIVE].complete(text("stream id", id)));
  }

  fail(id, error) {
    return run(() => this[NATIVE].fail(text("stream id", id), text("error", error)));
  }
}

// --------------------------------------------------------------------- conversations

let core;
const CORE = "@aibind/core";

/** `ChatHistory` from the optional peer @aibind/core, imported on first use. */
async function chatHistoryClass() {
  // A variable specifier and ignore comments: bundlers leave this import to Node instead
  // of failing the build when the optional peer is not installed.
  core ??= import(/* webpackIgnore: true */ /* turbopackIgnore: true */ /* @vite-ignore */ CORE).catch((err) => {
    core = undefined;
    throw storeError(
      "MISSING_PEER_DEPENDENCY",
      "PostgresConversationStore.load() returns a ChatHistory from @aibind/core, which is not " +
        "installed: run `npm install @aibind/core`, or use loadJSON() to get the stored JSON " +
        `(${err?.message ?? err})`,
    );
  });
  return (await core).ChatHistory;
}

class PostgresConversationStore extends Store {
  constructor(client, options) {
    super(NativeConversationStore, client, options);
  }

  async load(sessionId) {
    const [ChatHistory, json] = await Promise.all([chatHistoryClass(), this.loadJSON(sessionId)]);
    return json === null ? new ChatHistory() : ChatHistory.fromJSON(json);
  }

  save(sessionId, chat) {
    return run(() => {
      if (chat === null || typeof chat !== "object" || typeof chat.toJSON !== "function") {
        throw invalid(`chat must be a ChatHistory (an object with toJSON()), got ${describe(chat)}`);
      }
      const json = chat.toJSON();
      return this[NATIVE].saveJSON(text("sessionId", sessionId), typeof json === "string" ? json : JSON.stringify(json));
    });
  }

  /** The stored JSON of an unexpired session, or null. */
  loadJSON(sessionId) {
    return run(() => this[NATIVE].loadJSON(text("sessionId", sessionId)));
  }

  /** Stores a history's JSON text as it is. */
  saveJSON(sessionId, json) {
    return run(() => this[NATIVE].saveJSON(text("sessionId", sessionId), text("json", json)));
  }

  delete(sessionId) {
    return run(() => this[NATIVE].delete(text("sessionId", sessionId)));
  }
}

// ---------------------------------------------------------------------------- schema

function schemaOptions(options) {
  const opts = nativeOptions(options);
  return {
    chunksTable: opts.chunksTable,
    statusTable: opts.statusTable,
    conversationsTable: opts.conversationsTable ?? opts.table,
  };
}

/**
 * The DDL of the stores' tables (the original's schema) for the chosen table names, with
 * the indexes that keep `cleanup` fast on large tables. Every statement is idempotent.
 * Options: `chunksTable`, `statusTable`, `conversationsTable`.
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
    backend.close();
  }
  return statements;
}

module.exports = {
  PostgresStreamStore,
  PostgresConversationStore,
  wrapPostgresJs,
  wrapNeon,
  schemaSql,
  migrate,
};
