// What the driver (lib/driver.cjs) does only for node-postgres (pg) clients: telling a
// pg.Pool from a pg.Client, named statements, cancelling a statement on the server, and
// checking a pool's idle clients after a connection went dead.
"use strict";

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
 *
 * Returns `send(sql, params, arrays, client, landed, failed)`, which calls exactly one
 * of `landed(result)` and `failed(error)` (see `callPg`).
 */
function preparedPg() {
  const names = new Map();
  let prepare = true;
  const plain = (sql, params, arrays, client, landed, failed) =>
    callPg(
      client,
      arrays ? { text: sql, values: params, rowMode: "array" } : { text: sql, values: params },
      undefined,
      landed,
      failed,
    );
  return (sql, params, arrays, client, landed, failed) => {
    if (!prepare) return plain(sql, params, arrays, client, landed, failed);
    let named = names.get(sql);
    if (named === undefined) {
      const name = `aibind_${names.size}_${hash(sql)}`;
      // The statement's fixed parts sit on the prototype of an object with no own
      // properties: pg copies a config's own properties on every call (by property
      // descriptors, slow), and sets `values` on its copy.
      named = [Object.create({ name, text: sql }), Object.create({ name, text: sql, rowMode: "array" })];
      names.set(sql, named);
    }
    callPg(client, named[arrays ? 1 : 0], params, landed, (err) => {
      if (err?.code !== "26000" && err?.code !== "42P05") return failed(err);
      prepare = false;
      plain(sql, params, arrays, client, landed, failed);
    });
  };
}

/**
 * `client.query(config, values)` with a callback: pg then makes no promise of its own
 * (nor the one it chains to rewrite an error's stack), and the call's outcome is handled
 * as pg hands it over, not a few promise jobs later. Calls exactly one of `landed(result)`
 * and `failed(error)`, once: also for a pg-like client that throws, or that ignores the
 * callback and returns a promise. Neither may throw into pg's message handling: a throw
 * from `landed` goes to `failed` (which settles the call unless it is settled already).
 */
function callPg(client, config, values, landed, failed) {
  let called = false;
  const done = (err, result) => {
    if (called) return;
    called = true;
    if (err) {
      failed(err);
      return;
    }
    try {
      landed(result);
    } catch (thrown) {
      failed(thrown);
    }
  };
  let returned;
  try {
    returned = values === undefined ? client.query(config, done) : client.query(config, values, done);
  } catch (err) {
    done(err ?? new Error("the client's query threw"));
    return;
  }
  if (returned !== null && typeof returned?.then === "function") {
    returned.then(
      (result) => done(null, result),
      (err) => done(err ?? new Error("the client's query rejected")),
    );
  }
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
    typeof client.connect === "function" && typeof client.totalCount === "number" && typeof client.Client === "function"
  );
}

/** A `pg.Client` (or a client checked out of a `pg.Pool`): one connection. */
function isSingleConnection(client) {
  return typeof client.connectionParameters === "object" && typeof client.totalCount !== "number";
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
        /** @type {Promise<void>} */ (
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
          })
        ),
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
 * Resolves once the server has taken the request (it closes that connection after
 * signalling the backend), or after 5 s: only then may `conn` run another statement, or
 * a late cancel could stop that one instead.
 * @returns {Promise<void>}
 */
function cancelPg(conn, statement) {
  return new Promise((resolve) => {
    try {
      if (
        activeQuery(conn) !== statement ||
        statement == null ||
        typeof conn.constructor !== "function" ||
        !conn.processID
      )
        return resolve();
      const canceller = new conn.constructor(conn.connectionParameters);
      const con = canceller.connection;
      const end = setTimeout(() => {
        con.stream?.destroy?.();
        resolve();
      }, 5_000);
      end.unref?.();
      const taken = () => {
        clearTimeout(end);
        resolve();
      };
      con.on("error", taken);
      con.stream?.once?.("close", taken);
      con.on("connect", () => con.cancel(conn.processID, conn.secretKey));
      const { host, port } = canceller;
      if (typeof host === "string" && host.startsWith("/")) con.connect(`${host}/.s.PGSQL.${port}`);
      else con.connect(port, host);
    } catch {
      resolve(); // nothing more can be done: the client is destroyed anyway
    }
  });
}

module.exports = { isPg, isPgPool, isSingleConnection, preparedPg, quiet, checkIdle, lastQuery, isRunning, cancelPg };
