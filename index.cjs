// The public surface of @aibind-rs/postgres: the exports of @aibind/postgres, over the
// native binding. This file carries only what Rust cannot do cleanly: choosing the
// backend from the `client` argument, adapting a JS client's `query`, the async
// generator protocol of `readFrom`, `ChatHistory` from the optional peer @aibind/core,
// and turning native errors into plain `Error`s with `code` (and `sqlState`).
"use strict";

// The native addon, loaded where bundlers cannot follow (load-addon.cjs).
const { NativeBackend, NativeStreamStore, NativeConversationStore, schemaStatements } = require("./load-addon.cjs")();

// ---------------------------------------------------------------------------- errors

const { PostgresStoreError, storeError, translate, run } = require("./lib/errors.cjs");
const { Appends } = require("./lib/appends.cjs");
const { hubFor } = require("./lib/client-hub.cjs");
const { POSTGRES_JS } = require("./lib/listener.cjs");

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

function timeoutFailure(ms, phase) {
  return {
    failed: {
      message:
        `the call did not finish within queryTimeoutMs (${ms} ms); the database may be ` +
        "overloaded or unreachable, or the client stuck. Retry later",
      code: "QUERY_TIMEOUT",
      phase,
    },
  };
}

/** The deadline passed while the call waited for a connection of the client's pool. */
function noConnectionFailure(ms, exhausted) {
  return {
    failed: {
      message: exhausted
        ? `no connection of the client's pool was free within queryTimeoutMs (${ms} ms); the pool ` +
          "is exhausted (raise its max, or the database is slow)"
        : `opening a connection took longer than queryTimeoutMs (${ms} ms); is PostgreSQL reachable?`,
      code: "NO_FREE_CONNECTION",
    },
  };
}

function settleFailure(err, phase) {
  return {
    failed: {
      message: err instanceof Error ? err.message : String(err),
      code: err !== null && typeof err === "object" && typeof err.code === "string" ? err.code : null,
      phase,
    },
  };
}

/** Most calls a one-connection client (a pg.Client) may have waiting; beyond, OVERLOADED. */
const MOST_QUEUED = 20_000;

/**
 * The caller's `query` as the native backend calls it: `(sql, params, ticket)`, always
 * settling through `settle(ticket, outcome)` with the rows, `{ failed }` or
 * `{ malformed }`; what `settle` returns (or throws) is what the method resolves (or
 * rejects) with. The call's `queryTimeoutMs` runs from the moment it is made, waiting for
 * a connection or in the queue of a one-connection client included.
 *
 * A `pg.Pool` runs each query on a client it checks out itself, so that a query that
 * timed out can be cancelled on the server and its client destroyed (`release(err)`),
 * never reused: the pool then heals, and `pool.end()` still resolves.
 */
function adapt(client, settle, timeoutMs) {
  // pg gives a page's rows as arrays (cheaper to build and to read): `byIndex`.
  const byIndex = isPg(client);
  const send = byIndex ? preparedPg() : (sql, params) => client.query(sql, params);
  const checkout = isPgPool(client);
  // `queued`: what this call waits for on a one-connection client (the previous call off
  // the wire); `offWire()`: called once this call's statement is done on the connection,
  // or certain never to be sent.
  const query = (sql, params, ticket, byColumn, withinMs, queued, offWire) =>
    new Promise((resolve, reject) => {
      // Settles once: with the outcome, or when the call has taken its time
      // (`withinMs` when the store asks for less than `queryTimeoutMs`).
      const limit = withinMs == null ? timeoutMs : Math.max(1, Math.min(withinMs, timeoutMs));
      // The last tenth (at least 100 ms, or half when short) is kept to settle a pg
      // statement still running then (see the timer).
      const settleMs = isPg(client) ? Math.max(Math.floor(limit / 10), Math.min(100, Math.floor(limit / 2))) : 0;
      let done = false;
      // Where the call is: "queued" (behind a one-connection client's other calls),
      // "connect" (checking out a pg.Pool client) or "query" (sent).
      let phase = queued ? "queued" : checkout ? "connect" : "query";
      let conn; // the pg.Pool client this call checked out
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
      const timer = setTimeout(() => {
        if (phase === "connect") {
          const exhausted = client.totalCount >= (client.options?.max ?? 10);
          finish(() => settle(ticket, noConnectionFailure(timeoutMs, exhausted)));
          return;
        }
        const running = phase === "query" ? conn ?? (isSingleConnection(client) ? client : undefined) : undefined;
        if (running === undefined || !isRunning(running, statement)) {
          finish(() => settle(ticket, timeoutFailure(timeoutMs, phase)));
          return;
        }
        // Nearly out of time with a pg statement running: ask the server to cancel it, and
        // await its own answer for the time kept for that (`settleMs`). Then its outcome is
        // certain: cancelled (57014), or done after all. Only a connection that does not
        // answer even then (a dead network) leaves it unknown; a checked-out client is then
        // destroyed.
        cancelPg(running, statement);
        const grace = setTimeout(() => {
          finish(() => settle(ticket, timeoutFailure(timeoutMs, phase)));
          if (conn) {
            conn.release(new Error("aibind-rs: the query timed out; the client is destroyed"));
            conn = undefined;
            // The network that broke this connection has likely broken the idle ones too.
            checkIdle(client, timeoutMs);
          }
        }, settleMs);
        grace.unref?.();
      }, limit - settleMs);
      timer.unref?.();
      const failed = (err) => {
        if (conn) {
          // A client whose connection broke is destroyed, not given back.
          conn.release(err instanceof Error ? err : new Error(String(err)));
          conn = undefined;
        }
        finish(() => settle(ticket, settleFailure(err, phase)));
      };
      let pending;
      let statement; // pg's query object of this call, once sent
      const sendOn = (target) => {
        const sent = send(sql, params, byColumn != null, target);
        statement = lastQuery(target);
        return sent;
      };
      try {
        pending = checkout
          ? client.connect().then((c) => {
              quiet(c);
              if (done) {
                c.release(); // the deadline passed while it was checked out: unused
                return new Promise(() => {});
              }
              conn = c;
              phase = "query";
              return sendOn(c);
            })
          : (queued ?? Promise.resolve()).then(() => {
              if (done) {
                offWire?.(); // never sent
                return new Promise(() => {});
              }
              phase = "query";
              return sendOn(client);
            });
      } catch (err) {
        offWire?.();
        queueMicrotask(() => failed(err));
        return;
      }
      Promise.resolve(pending).then(
        () => offWire?.(),
        () => offWire?.(),
      );
      Promise.resolve(pending).then(
        (result) => {
          if (conn) {
            conn.release();
            conn = undefined;
          }
          finish(() => {
            const rows = settleRows(result);
            if (byColumn == null || !Array.isArray(rows)) return settle(ticket, rows);
            const columns = rows.every(isObject) ? columnar(rows, byColumn, byIndex) : undefined;
            return settle(ticket, columns || !byIndex ? rows : asObjects(rows, byColumn), columns);
          });
        },
        failed,
      );
    });
  if (!isSingleConnection(client)) return query;
  // One connection runs one query at a time: queue them here rather than lean on pg's
  // own queue, which pg deprecates for concurrent calls. Each call's deadline runs from
  // when it is made, its time in this queue included.
  // A call goes on the wire once the one before is off it (done on the connection, not
  // merely timed out here), so a call never waits in pg's own queue and the statement a
  // timed-out call cancels is its own. The queue is the connection's: every store on it
  // (and the NOTIFYs of lib/client-hub.cjs) goes through it.
  const lane = laneOf(client);
  return (sql, params, ticket, byColumn, withinMs) => {
    if (lane.waiting >= MOST_QUEUED) {
      const failed = {
        message:
          `${MOST_QUEUED} calls are already waiting for this client's one connection; it is not ` +
          "keeping up. Retry later, or pass a pg.Pool",
        code: "OVERLOADED",
      };
      // settle() throws the call's error: as a rejection, like every other outcome.
      return new Promise((resolve) => resolve(settle(ticket, { failed })));
    }
    lane.waiting++;
    let offWire;
    const wire = new Promise((resolve) => (offWire = resolve));
    const result = query(sql, params, ticket, byColumn, withinMs, lane.tail, offWire);
    lane.tail = wire.then(() => lane.waiting--);
    return result;
  };
}

/** @type {WeakMap<object, { tail: Promise<unknown>, waiting: number }>} */
const lanes = new WeakMap();

/** The queue of a one-connection client's calls (see `adapt`). */
function laneOf(client) {
  let lane = lanes.get(client);
  if (lane === undefined) {
    lane = { tail: Promise.resolve(), waiting: 0 };
    lanes.set(client, lane);
  }
  return lane;
}

/**
 * A statement whose rows do not matter (the hub's NOTIFYs) through the caller's client,
 * as the stores' calls go (`adapt`): a pg.Pool client checked out, cancelled and destroyed
 * if it does not answer in time; a one-connection client's queue. Resolves the rows or
 * `{ failed }` / `{ malformed }`, never rejects.
 */
function sender(client, timeoutMs) {
  const query = adapt(client, (ticket, outcome) => outcome, timeoutMs);
  return (sql, params) => query(sql, params, 0, null, null);
}

/** Clients given a listener for their 'error' events. */
const quieted = new WeakSet();

/**
 * A pg client checked out of the caller's pool emits 'error' when its connection breaks
 * while no query of it runs (pg-pool listens only while the client is idle in the pool);
 * with no listener that would end the process. The failure reaches the caller through
 * the query or the next checkout instead.
 */
function quiet(c) {
  if (quieted.has(c)) return;
  quieted.add(c);
  c.on?.("error", () => {});
}

/** Pools whose idle clients are being checked. */
const checking = new WeakSet();

/**
 * Checks every idle client of a pg.Pool at once with an empty query, and destroys those
 * that do not answer within a second or so: after one connection went dead, the pool
 * heals in about that time, not one `queryTimeoutMs` per dead client.
 */
function checkIdle(pool, timeoutMs) {
  if (checking.has(pool) || !(pool.idleCount > 0)) return;
  checking.add(pool);
  const limit = Math.min(1_000, timeoutMs);
  const checks = Array.from({ length: pool.idleCount }, () =>
    pool.connect().then(
      (c) =>
        new Promise((resolve) => {
          quiet(c);
          let settled = false;
          const timer = setTimeout(() => {
            settled = true;
            c.release(new Error("aibind-rs: an idle connection did not answer; destroyed"));
            resolve();
          }, limit);
          timer.unref?.();
          c.query("").then(
            () => {
              if (settled) return;
              clearTimeout(timer);
              c.release();
              resolve();
            },
            (err) => {
              if (settled) return;
              clearTimeout(timer);
              c.release(err instanceof Error ? err : new Error(String(err)));
              resolve();
            },
          );
        }),
      () => {},
    ),
  );
  Promise.all(checks).finally(() => checking.delete(pool));
}

/** The query a pg client runs now (pg's own `activeQuery` getter is deprecated and warns). */
function activeQuery(conn) {
  return typeof conn?._getActiveQuery === "function" ? conn._getActiveQuery() : conn?._activeQuery;
}

/**
 * The query pg made for the call just sent on `conn`: the last in its queue, or the one it
 * runs (pg keeps the previous query active until ReadyForQuery, after it rejected).
 */
function lastQuery(conn) {
  const queue = conn?._queryQueue;
  return Array.isArray(queue) && queue.length > 0 ? queue[queue.length - 1] : activeQuery(conn);
}

/**
 * Whether `statement` (a query object pg made for one of our calls) is still with `conn`:
 * running, or about to run once the one before it is done.
 */
function isRunning(conn, statement) {
  if (statement == null) return false;
  return activeQuery(conn) === statement || (Array.isArray(conn._queryQueue) && conn._queryQueue.includes(statement));
}

/**
 * Asks the server to cancel `statement`, which `conn` (a pg client) is running, over a
 * connection of its own, as libpq's PQcancel does. Best effort: errors are swallowed.
 */
function cancelPg(conn, statement) {
  try {
    if (activeQuery(conn) !== statement || statement == null || typeof conn.constructor !== "function" || !conn.processID) return;
    const canceller = new conn.constructor(conn.connectionParameters);
    const con = canceller.connection;
    con.on("error", () => {});
    con.on("connect", () => con.cancel(conn.processID, conn.secretKey));
    const { host, port } = canceller;
    if (typeof host === "string" && host.startsWith("/")) con.connect(`${host}/.s.PGSQL.${port}`);
    else con.connect(port, host);
    const end = setTimeout(() => con.stream?.destroy?.(), 5_000);
    end.unref?.();
  } catch {
    // nothing more can be done: the client is destroyed anyway
  }
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
function preparedPg() {
  const names = new Map();
  let prepare = true;
  const plain = (sql, params, arrays, client) =>
    client.query(arrays ? { text: sql, values: params, rowMode: "array" } : { text: sql, values: params });
  return (sql, params, arrays, client) => {
    if (!prepare) return plain(sql, params, arrays, client);
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
      return plain(sql, params, arrays, client);
    });
  };
}

/** A short, stable hash of a statement's text (FNV-1a), for its name. */
function hash(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(36);
}

/** A `pg.Pool` (pg's own, or one with its shape): queries run on clients checked out of it. */
function isPgPool(client) {
  return (
    typeof client.connect === "function" &&
    typeof client.totalCount === "number" &&
    typeof client.Client === "function"
  );
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

/** A JS client's backend → its client's hub (lib/client-hub.cjs) and its place there. */
const hubOf = new WeakMap();

function backendFor(client, options) {
  if (isMissing(client)) throw missingClient();
  if (client instanceof URL) client = client.href;
  if (typeof client === "string") return NativeBackend.connect(client, options);
  if (client !== null && typeof client === "object" && typeof client.query === "function") {
    const hub = hubFor(client, sender(client, options?.queryTimeoutMs ?? 30_000));
    const backend = NativeBackend.fromQuery((settle, timeoutMs) => adapt(client, settle, timeoutMs), options, hub.number);
    hubOf.set(backend, { hub, token: hub.add(backend, options) });
    return backend;
  }
  throw invalid(
    "client must be a PostgreSQL connection string or an object with a query(sql, params) " +
      "method (a pg.Pool or pg.Client, wrapPostgresJs(sql), wrapNeon(sql)), got " +
      describe(client),
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
  listen: "boolean",
  synchronousCommit: "boolean",
};

function nativeOptions(options) {
  if (options === undefined || options === null) return {};
  if (typeof options !== "object") throw invalid(`options must be an object, got ${describe(options)}`);
  if (options.listenUrl instanceof URL) options = { ...options, listenUrl: options.listenUrl.href };
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

/**
 * A postgres.js `sql` instance as a PostgresClient. Statements are prepared (and cached
 * by postgres.js) unless the instance was created with `prepare: false`, as needed behind
 * PgBouncer in transaction mode.
 */
function wrapPostgresJs(sql) {
  const prepare = sql?.options?.prepare !== false;
  const client = {
    async query(text, params = []) {
      return { rows: await sql.unsafe(text, params, { prepare }) };
    },
  };
  // For the LISTEN connection (lib/listener.cjs): `sql.listen`. Hidden, not enumerable.
  Object.defineProperty(client, POSTGRES_JS, { value: sql });
  return client;
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

class Store {
  #native;
  #closed = false;
  #backend;
  /** A JS client's hub and this store's place there (lib/client-hub.cjs). */
  #hub;

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
    this.#native = construct(() => {
      this.#backend = backendFor(client, opts);
      this.#hub = hubOf.get(this.#backend);
      try {
        return new Native(this.#backend, opts);
      } catch (err) {
        this.#hub?.hub.remove(this.#hub.token);
        throw err;
      }
    });
  }

  /** An append settled: other processes hear of what was written (JS clients). */
  static wrote(store) {
    store.#hub?.hub.wrote();
  }

  /** A reader is about to wait: the client's listener and shared check run (JS clients). */
  static waiting(store) {
    if (store.#hub) store.#hub.hub.waiting(store.#hub.token);
  }

  /** The pool, the listener, waiting readers and counters now (null where not known). */
  stats() {
    native(this);
    const s = this.#backend.stats();
    const or = (v) => (v === undefined ? null : v);
    return {
      backend: s.backend,
      pooler: or(s.pooler),
      maxSize: or(s.maxSize),
      size: or(s.size),
      inUse: or(s.inUse),
      idle: or(s.idle),
      opening: or(s.opening),
      waiting: or(s.waiting),
      allowed: or(s.allowed),
      listener: this.#hub?.hub.canListen ? this.#hub.hub.listenerState : s.listener,
      readersWaiting: s.readersWaiting,
      statementsSent: or(s.statementsSent),
      notificationsSent: or(s.notificationsSent),
      notificationsReceived: or(s.notificationsReceived),
      connectionsRefused: or(s.connectionsRefused),
    };
  }

  /**
   * The native store behind `store`; a clear error when `store` is not one (a wrong
   * `this`), when it was made without a client, or once it is closed.
   */
  static native(store) {
    if (store === null || typeof store !== "object" || !(#native in store)) {
      throw invalid(
        "a store method was called on an object that is not a store (was it taken off its " +
          "store, as in `const { append } = store`? bind it, or call it on the store)",
      );
    }
    if (store.#native === undefined) {
      throw store.#closed ? storeError("STORE_CLOSED", "this store has been closed; create a new store to keep going") : missingClient();
    }
    return store.#native;
  }

  /** Removes expired rows; resolves how many streams (or conversations) went. */
  cleanup() {
    return run(() => native(this).cleanup());
  }

  /**
   * Releases the store's connection and ends its waiting readers; resolves once a pool
   * no other store uses has closed its connections.
   */
  async close() {
    if (this === null || typeof this !== "object" || !(#native in this)) Store.native(this); // a wrong `this`
    this.#closed = true;
    if (this.#hub) {
      this.#hub.hub.remove(this.#hub.token);
      this.#hub = undefined;
    }
    await run(async () => this.#native?.close());
  }

  get closed() {
    if (this === null || typeof this !== "object" || !(#native in this)) Store.native(this); // a wrong `this`
    return this.#native?.closed ?? this.#closed;
  }
}

const native = (store) => Store.native(store);
const wrote = (store) => Store.wrote(store);
const waiting = (store) => Store.waiting(store);

if (typeof Symbol.asyncDispose === "symbol") {
  Store.prototype[Symbol.asyncDispose] = Store.prototype.close;
}

// --------------------------------------------------------------------------- streams

class PostgresStreamStore extends Store {
  #appends;
  #pollIntervalMs;
  /** @type {Map<string, AbortController>} */
  #stopSignals = new Map();

  constructor(client, options) {
    super(NativeStreamStore, client, options);
    const opts = nativeOptions(options);
    this.#appends = new Appends(() => native(this), opts.queryTimeoutMs ?? 30_000);
    this.#pollIntervalMs = opts.pollIntervalMs ?? 100;
  }

  create(id) {
    return run(async () => {
      await native(this).create(text("stream id", id));
      this.#appends.created(id);
    });
  }

  /**
   * Resolves the seq the chunk was stored at, exactly once; rejects only when it was not
   * stored and never will be, or with APPEND_OUTCOME_UNKNOWN (see lib/appends.cjs).
   */
  append(id, chunk) {
    return run(() => {
      native(this);
      const appended = this.#appends.append(text("stream id", id), text("chunk", chunk));
      const announce = () => wrote(this);
      appended.then(announce, announce);
      return appended;
    });
  }

  /**
   * An AbortSignal that aborts when the stream leaves `active` (stop, complete, fail,
   * removed) through any store in any process: pass it to the model call so a Stop
   * reaches the producer at once. In-process wake-ups and NOTIFY feed it; JS clients
   * also look every `pollIntervalMs`. One signal per stream and store.
   */
  stopSignal(id) {
    native(this);
    text("stream id", id);
    const known = this.#stopSignals.get(id);
    if (known) return known.signal;
    const controller = new AbortController();
    this.#stopSignals.set(id, controller);
    this.#watchStop(id, controller);
    return controller.signal;
  }

  async #watchStop(id, controller) {
    try {
      for (;;) {
        try {
          const reader = await run(() => native(this).stopWatcher(id));
          try {
            while ((await run(() => reader.nextPage())) !== null) {
              waiting(this);
              await reader.pause();
            }
          } finally {
            reader.release();
          }
          break;
        } catch (err) {
          if (this.closed) return; // a closed store can no longer tell: it does not abort
          await sleep(this.#pollIntervalMs);
        }
      }
      if (this.closed) return;
      controller.abort(new PostgresStoreError("STREAM_NOT_ACTIVE", `Stream "${id}" not found or not active`));
    } finally {
      this.#stopSignals.delete(id);
    }
  }

  async *readFrom(id, afterSeq) {
    const reader = await run(() => native(this).reader(text("stream id", id), seqArgument(afterSeq)));
    const retryFor = native(this).retryReadsForMs;
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
          waiting(this);
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
    const status = await run(() => native(this).getStatus(text("stream id", id)));
    if (status === null) return null;
    return { state: status.state, error: status.error ?? undefined, totalChunks: status.totalChunks };
  }

  stop(id) {
    return run(() => native(this).stop(text("stream id", id)));
  }

  complete(id) {
    return run(() => native(this).complete(text("stream id", id)));
  }

  fail(id, error) {
    return run(() => native(this).fail(text("stream id", id), text("error", error)));
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
      if (typeof json !== "string") {
        throw invalid(`chat.toJSON() must return a string (ChatHistory's JSON), got ${describe(json)}`);
      }
      return native(this).saveJSON(text("sessionId", sessionId), text("chat.toJSON()", json));
    });
  }

  /** The stored JSON of an unexpired session, or null. */
  loadJSON(sessionId) {
    return run(() => native(this).loadJSON(text("sessionId", sessionId)));
  }

  /** Stores a history's JSON text as it is. */
  saveJSON(sessionId, json) {
    return run(() => native(this).saveJSON(text("sessionId", sessionId), text("json", json)));
  }

  delete(sessionId) {
    return run(() => native(this).delete(text("sessionId", sessionId)));
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
    const shared = hubOf.get(backend);
    shared?.hub.remove(shared.token);
    await backend.close();
  }
  return statements;
}

module.exports = {
  PostgresStoreError,
  PostgresStreamStore,
  PostgresConversationStore,
  wrapPostgresJs,
  wrapNeon,
  schemaSql,
  migrate,
};
