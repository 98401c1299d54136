// The JS-client driver: a caller's `{ query }` (a pg.Pool or pg.Client, wrapPostgresJs(sql),
// wrapNeon(sql), any PostgresClient) as the native backend calls it (src/backend/js/).
//
// The protocol between this file and src/backend/js/, the one place it is written down:
//
//   NativeBackend.fromQuery(makeAdapter, options, clientNumber) calls, once per backend,
//     makeAdapter(settle, queryTimeoutMs) -> query            (`adapt` below)
//   and then, for every statement,
//     query(sql, params, ticket, columns, withinMs) -> Promise
//       sql       the statement's text; params: its parameters as JSON values
//       ticket    a number that names the statement in `settle`
//       columns   the columns the statement reads, "name:i,name:t,...": i an integer,
//                 t a text column ("" for none)
//       withinMs  null, or a limit shorter than queryTimeoutMs for this call alone
//   The adapter settles every call exactly once, whatever happens, by returning
//     settle(ticket, outcome)
//   (its promise resolves with what settle returns, or rejects with what it throws: the
//   store method's own result or error, made in Rust), where outcome is one of
//     { failed: { message, code, phase? } }   the client threw or rejected, or the call
//         ran out of time or queue space (code QUERY_TIMEOUT, NO_FREE_CONNECTION,
//         OVERLOADED, else the driver's own: an SQLSTATE or a Node error code, if any; phase
//         "queued" | "connect" | "query": where the call was; "cancelled": it cancelled it)
//     { malformed: "<what came back>" }       the result was not `{ rows: [...] }`
//     { rows, columns, notAnObject? }         the rows, always by column (`outcomeOf`):
//         `rows` rows (up to the first that is not an object, which `notAnObject`
//         names: { row, got }), and per column of `columns`, in order, one of
//           { ints }            a Float64Array (NaN for NULL), for an integer column
//           { text, lengths }   a text column's values joined into one string, and an
//                               Int32Array of their UTF-16 lengths (-1 for NULL)
//           { values }          the values as they came (a value of another type, or
//                               one only Rust reads exactly, such as a BigInt)
//   A handful of values cross into Rust instead of several per row. Rust reads the cells
//   row by row (leniently: drivers return int8 and counts as strings, postgres.js may
//   return BigInts) and classifies `failed` and `malformed` (src/error.rs).
"use strict";

const { describe } = require("./options.cjs");
const { POSTGRES_JS } = require("./listener.cjs");
const {
  isPg,
  isPgPool,
  isSingleConnection,
  preparedPg,
  quiet,
  checkIdle,
  lastQuery,
  isRunning,
  cancelPg,
} = require("./pg.cjs");

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
      code: err !== null && typeof err === "object" && typeof err.code === "string" ? err.code : undefined,
      phase,
    },
  };
}

/**
 * As a call's `columns`, from JS only (lib/conversation-store.cjs's combined loads): the
 * rows as they came, each an array of its columns in order where the client is pg's
 * (cheaper for pg to build than an object a row), else an object.
 */
const ROWS_AS_ARRAYS = Symbol("rows as arrays");

/** Most calls a one-connection client (a pg.Client) may have waiting; beyond, OVERLOADED. */
const MOST_QUEUED = 20_000;

/**
 * The caller's `query` as the native backend calls it (the protocol above): always
 * settling through `settle(ticket, outcome)`, whose result the method resolves (or
 * rejects) with. `queryTimeoutMs` runs from the call, waiting for a connection included.
 *
 * A `pg.Pool` runs each query on a client it checks out itself, so that a query that
 * timed out can be cancelled on the server and its client destroyed (`release(err)`),
 * never reused: the pool then heals, and `pool.end()` still resolves.
 */
function adapt(client, settle, timeoutMs) {
  // pg gives the rows as arrays (cheaper to build and to read): `byIndex`.
  const byIndex = isPg(client);
  /** @type {(sql: string, params: unknown[], arrays: boolean, target: any, landed: (result: any) => void, failed: (err: unknown) => void) => void} */
  const send = byIndex
    ? preparedPg()
    : (sql, params, _arrays, target, landed, failed) => Promise.resolve(target.query(sql, params)).then(landed, failed);
  const checkout = isPgPool(client);
  const single = isSingleConnection(client);
  // `queued`: what this call waits for on a one-connection client (the previous call off
  // the wire); `offWire()`: called once this call's statement is done on the connection,
  // or certain never to be sent.
  const query = (sql, params, ticket, columns, withinMs, queued, offWire) =>
    new Promise((resolve, reject) => {
      // Settles once: with the outcome, or when the call has taken its time
      // (`withinMs` when the store asks for less than `queryTimeoutMs`).
      const limit = withinMs == null ? timeoutMs : Math.max(1, Math.min(withinMs, timeoutMs));
      // The last tenth (at least 100 ms, or half when short) is kept to settle a pg
      // statement still running then (see the timer).
      const settleMs = byIndex ? Math.max(Math.floor(limit / 10), Math.min(100, Math.floor(limit / 2))) : 0;
      let done = false;
      let cancelling; // the cancel request sent for this call (see `cancelPg`), if any
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
        const running = phase === "query" ? (conn ?? (single ? client : undefined)) : undefined;
        if (running === undefined || !isRunning(running, statement)) {
          finish(() => settle(ticket, timeoutFailure(timeoutMs, phase)));
          return;
        }
        // Nearly out of time with a pg statement running: ask the server to cancel it, and
        // await its own answer for the time kept for that (`settleMs`). Then its outcome is
        // certain: cancelled (57014), or done after all. Only a connection that does not
        // answer even then (a dead network) leaves it unknown; a checked-out client is then
        // destroyed.
        cancelling = cancelPg(running, statement);
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
      // Off the wire (a one-connection client's queue): once done there, and once the
      // server took a cancel sent for it.
      const off = offWire === undefined ? undefined : () => void Promise.resolve(cancelling).then(offWire);
      // The statement's outcome, from the client: exactly one of the two, once.
      const failed = (err) => {
        off?.();
        // A pool's client whose connection broke before the statement went out (pg: "...
        // is not queryable"): never sent, as a failed checkout; another client may work.
        const unsent = conn !== undefined && /and is not queryable$/.test(String(err?.message));
        if (conn) {
          // A client whose connection broke is destroyed, not given back.
          conn.release(err instanceof Error ? err : new Error(String(err)));
          conn = undefined;
        }
        finish(() => settle(ticket, settleFailure(err, cancelling ? "cancelled" : unsent ? "connect" : phase)));
      };
      const landed = (result) => {
        off?.();
        if (conn) {
          // A cancel sent for it may arrive late and stop its next statement: not given back.
          if (cancelling) conn.release(new Error("aibind-rs: a cancel request was sent on this client"));
          else keepSpare(client, conn);
          conn = undefined;
        }
        finish(() =>
          settle(
            ticket,
            columns == null || columns === ROWS_AS_ARRAYS ? settleRows(result) : outcomeOf(result, columns, byIndex),
          ),
        );
      };
      let statement; // pg's query object of this call, once sent
      const sendOn = (target) => {
        try {
          send(sql, params, columns != null, target, landed, failed); // ROWS_AS_ARRAYS too
        } catch (err) {
          failed(err); // not sent (a `{ query }` client that threw)
          return;
        }
        statement = lastQuery(target);
      };
      try {
        const spare = checkout ? takeSpare(client) : undefined;
        if (spare !== undefined) {
          conn = spare;
          phase = "query";
          sendOn(spare);
        } else if (checkout) {
          client.connect().then((c) => {
            quiet(c);
            if (done) {
              c.release(); // the deadline passed while it was checked out: unused
              return;
            }
            conn = c;
            phase = "query";
            sendOn(c);
          }, failed);
        } else {
          (queued ?? Promise.resolve()).then(() => {
            if (done) {
              offWire?.(); // never sent
              return;
            }
            phase = "query";
            sendOn(client);
          });
        }
      } catch (err) {
        offWire?.();
        queueMicrotask(() => failed(err));
      }
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
  return (sql, params, ticket, columns, withinMs) => {
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
    const result = query(sql, params, ticket, columns, withinMs, lane.tail, offWire);
    lane.tail = wire.then(() => lane.waiting--);
    return result;
  };
}

/**
 * A pg.Pool client whose call just finished, kept checked out until the event loop's
 * next check phase (`setImmediate`) for a call made meanwhile: the next append of a loop
 * that awaits each one then goes out on it at once, without a checkout's round through
 * the pool (a `process.nextTick` and two promises). It goes back to the pool then, or at
 * once when the pool has callers waiting for a client or is ending.
 * @type {WeakMap<object, object>}
 */
const spares = new WeakMap();

/** Gives `conn` (checked out of `pool`, its call done) back now, or keeps it as the spare. */
function keepSpare(pool, conn) {
  if (pool.ending || pool.waitingCount > 0 || spares.has(pool)) {
    conn.release();
    return;
  }
  spares.set(pool, conn);
  setImmediate(() => {
    if (spares.get(pool) !== conn) return; // taken meanwhile
    spares.delete(pool);
    conn.release();
  });
}

/**
 * The pool's spare client, taken for a call; undefined if none. A spare whose connection
 * broke meanwhile (pg says so on the client: `_queryable`, `_ending`) is destroyed, not
 * used: the pool did not watch it while it was kept.
 */
function takeSpare(pool) {
  const conn = spares.get(pool);
  if (conn === undefined) return undefined;
  spares.delete(pool);
  if (conn._queryable === false || conn._ending === true) {
    conn.release(new Error("aibind-rs: the kept client's connection broke"));
    return undefined;
  }
  if (!pool.ending) return conn;
  conn.release();
  return undefined;
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

/** The columns of a spec ("name:i,name:t,..."), parsed once per statement. */
const specs = new Map();
function parseSpec(spec) {
  let columns = specs.get(spec);
  if (columns === undefined) {
    columns =
      spec === "" ? [] : spec.split(",").map((c, index) => ({ name: c.slice(0, -2), index, int: c.endsWith(":i") }));
    specs.set(spec, columns);
  }
  return columns;
}

/**
 * The outcome of a call whose client resolved with `result` (the protocol above):
 * `{ malformed }` without a rows array, else the rows by column, as `spec` asks; the
 * rows by index when they came as arrays (pg's rowMode "array": `byIndex`).
 */
function outcomeOf(result, spec, byIndex) {
  const rows = settleRows(result);
  if (!Array.isArray(rows)) return rows;
  /** @type {{ rows?: number, columns?: object[], notAnObject?: { row: number, got: string } }} */
  const outcome = {};
  let n = rows.findIndex((row) => !isObject(row));
  if (n === -1) n = rows.length;
  else outcome.notAnObject = { row: n, got: typeName(rows[n]) };
  outcome.rows = n;
  outcome.columns = parseSpec(spec).map(({ name, index, int }) => {
    const key = byIndex ? index : name;
    return (int ? integers(rows, n, key) : texts(rows, n, key)) ?? { values: valuesOf(rows, n, key) };
  });
  return outcome;
}

/** Whole numbers as decimal digits that a double holds exactly (and Rust reads alike). */
const DIGITS = /^[0-9]{1,15}$/;

/** An integer column as `{ ints }`; undefined if a value is not plainly an integer. */
function integers(rows, n, key) {
  const ints = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = rows[i][key];
    if (v === null || v === undefined) ints[i] = NaN;
    else if (typeof v === "number" && Number.isInteger(v) && Math.abs(v) < 9e15) ints[i] = v;
    else if (typeof v === "string" && DIGITS.test(v)) ints[i] = Number(v);
    else return undefined;
  }
  return { ints };
}

/** A text column as `{ text, lengths }`; undefined if a value is not a string. */
function texts(rows, n, key) {
  const lengths = new Int32Array(n);
  let text = "";
  for (let i = 0; i < n; i++) {
    const v = rows[i][key];
    if (typeof v === "string") {
      text += v;
      lengths[i] = v.length;
    } else if (v === null || v === undefined) lengths[i] = -1;
    else return undefined;
  }
  return { text, lengths };
}

/** A column's values as they came. */
function valuesOf(rows, n, key) {
  const values = new Array(n);
  for (let i = 0; i < n; i++) values[i] = rows[i][key];
  return values;
}

/** What a row that is not an object is, in the words of the native side's messages. */
function typeName(value) {
  if (value === null) return "null";
  switch (typeof value) {
    case "undefined":
      return "undefined";
    case "boolean":
      return "a boolean";
    case "number":
      return "a number";
    case "string":
      return "a string";
    case "symbol":
      return "a symbol";
    case "function":
      return "a function";
    case "bigint":
      return "a BigInt";
    default:
      return "an object";
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

module.exports = { adapt, sender, outcomeOf, wrapPostgresJs, wrapNeon, ROWS_AS_ARRAYS };
