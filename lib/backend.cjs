// The backend behind a store (src/backend/mod.rs): the Rust pool for a connection string,
// the JS driver (lib/driver.cjs) for a client object, which joins its client's hub.
"use strict";

const { NativeBackend } = require("./binding.cjs");
const { hubFor } = require("./client-hub.cjs");
const { adapt, sender } = require("./driver.cjs");
const { POSTGRES_JS } = require("./listener.cjs");
const { isPg } = require("./pg.cjs");
const { describe, invalid, isMissing, missingClient } = require("./options.cjs");
const { storeError } = require("./errors.cjs");

/** A JS client's backend → its client's hub (lib/client-hub.cjs) and its place there. */
const hubOf = new WeakMap();
/**
 * A JS client's backend → its statements run from JS, by the same driver and limits
 * (`query(sql, params, columns, withinMs)` resolves the driver's outcome, never rejects):
 * what lib/replay.cjs reads pages with. `.pg`: the client is pg's, whose rows lib/appends.cjs
 * reads itself to send appends from JS.
 */
const directOf = new WeakMap();

/** A pg or postgres.js client → whether its database has Citus (a promise). */
const citusOf = new WeakMap();

/**
 * Whether the database has Citus, asked once per pg or postgres.js client (other `{ query }`
 * objects are not asked: give them the `citus` option). Statements go in their plain form
 * until the answer is in (src/backend/citus.rs).
 */
function detectCitus(client, backend) {
  const key = client[POSTGRES_JS] ?? client;
  if (!isPg(client) && key === client) return;
  let found = citusOf.get(key);
  if (found === undefined) {
    found = backend.detectCitus().catch(() => undefined);
    citusOf.set(key, found);
    return;
  }
  found.then((citus) => citus !== undefined && backend.setCitus(citus)).catch(() => {});
}

function backendFor(client, options) {
  if (isMissing(client)) throw missingClient();
  if (client instanceof URL) client = client.href;
  const { replica, ...rest } = options ?? {};
  const hasReplica = replica !== undefined && replica !== null;
  if (hasReplica && (typeof replica !== "object" || typeof replica.query !== "function")) {
    throw storeError(
      "INVALID_OPTION",
      `option "replica" must be a client with query(sql, params) (a pg.Pool, wrapPostgresJs(sql)), got ${describe(replica)}`,
    );
  }
  if (typeof client === "string") {
    if (hasReplica) {
      throw storeError(
        "INVALID_OPTION",
        'option "replica" (a client object) goes with a JS client as the store\'s client; with a ' +
          'connection string give "replicaUrl"',
      );
    }
    return NativeBackend.connect(client, options);
  }
  if (client !== null && typeof client === "object" && typeof client.query === "function") {
    if (options?.replicaUrl !== undefined && options?.replicaUrl !== null) {
      throw storeError(
        "INVALID_OPTION",
        'option "replicaUrl" goes with a connection string as the store\'s client; with a JS client ' +
          'give "replica", a client of the replica (a second pg.Pool, wrapPostgresJs(sql))',
      );
    }
    const hub = hubFor(client, sender(client, options?.queryTimeoutMs ?? 30_000));
    /** @type {any} the statements JS runs itself (`directOf`), once the adapter is made */
    let direct;
    const backend = NativeBackend.fromQuery(
      (settle, timeoutMs) => {
        // With a replica, reads go through the native backend, which routes them.
        if (!hasReplica) {
          const query = adapt(client, (_ticket, outcome) => outcome, timeoutMs);
          /** @type {(sql: string, params: unknown[], columns: string | null, withinMs?: number | null) => Promise<any>} */
          const run = (sql, params, columns, withinMs = null) => query(sql, params, 0, columns, withinMs);
          // `width`: how many statements the client runs at once (a pg.Pool its `max`, a
          // pg.Client one): appends beyond it go out together (lib/appends.cjs).
          const width = isPg(client)
            ? typeof client.totalCount === "number"
              ? (client.options?.max ?? 10)
              : 1
            : Infinity;
          direct = Object.assign(run, { pg: isPg(client), width });
        }
        return adapt(client, settle, timeoutMs);
      },
      rest,
      hub.number,
      hasReplica ? (settle, timeoutMs) => adapt(replica, settle, timeoutMs) : undefined,
    );
    hubOf.set(backend, { hub, token: hub.add(backend, options) });
    if (direct) {
      // What a lone append carries in its own transaction (lib/appends.cjs `#takeHeld`),
      // and what one that failed carried, sent after.
      direct.take = () => backend.takeNotifications();
      direct.announce = (payloads) => hub.announce(payloads, options?.queryTimeoutMs ?? 30_000);
      direct.publishing = () => hub.publishing;
      directOf.set(backend, direct);
    }
    if (options?.citus === undefined) detectCitus(client, backend);
    return backend;
  }
  throw invalid(
    "client must be a PostgreSQL connection string or an object with a query(sql, params) " +
      "method (a pg.Pool or pg.Client, wrapPostgresJs(sql), wrapNeon(sql)), got " +
      describe(client),
  );
}

module.exports = { backendFor, hubOf, directOf };
