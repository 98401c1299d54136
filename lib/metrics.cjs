// OpenTelemetry metrics through `@opentelemetry/api`'s meter, while an SDK's meter
// provider is registered (lib/telemetry.cjs looks): the stable `db.client.operation.duration`
// from the Rust pool's round trips, the pool's `db.client.connection.*` from its own status
// (`stats()`), and the package's own figures under `aibind.`.
"use strict";

/** @type {any} the instruments, while a meter provider is registered */
let instruments = null;
let provider = null;

/**
 * A live store of each Rust pool (a weak reference) and the pool's name, by what makes
 * the pool (the connection string and the pool's options; kept here, never reported).
 * @type {Map<string, { ref: WeakRef<any>, name: string }>}
 */
const pools = new Map();
const POOL_OPTIONS = [
  "poolSize",
  "connectTimeoutMs",
  "queryTimeoutMs",
  "idleTimeoutMs",
  "pooler",
  "listenUrl",
  "listenHeartbeatMs",
];

/**
 * A store on the Rust pool of connection string `url` with options `opts`: its pool's
 * status is observed while the store lives. The pool's name is `host:port/database`,
 * with ` #2`, ` #3` for other pools of the same database.
 */
function register(store, url, opts, target) {
  const key = JSON.stringify([url, ...POOL_OPTIONS.map((o) => opts?.[o] ?? null)]);
  const known = pools.get(key);
  const live = known?.ref.deref();
  if (live !== undefined && !live.closed) return;
  let name = known?.name;
  if (name === undefined) {
    const base = `${target.serverAddress ?? ""}:${target.serverPort ?? ""}/${target.database ?? ""}`;
    const taken = new Set([...pools.values()].map((p) => p.name));
    name = base;
    for (let n = 2; taken.has(name); n++) name = `${base} #${n}`;
  }
  pools.set(key, { ref: new WeakRef(store), name });
}

/** The status of each live pool: [name, stats]. */
function* statuses() {
  for (const [key, { ref, name }] of pools) {
    const store = ref.deref();
    if (store === undefined || store.closed) {
      pools.delete(key);
      continue;
    }
    yield [name, store.stats()];
  }
}

/** Uses `meterProvider` (null: none registered) of the API `api`. */
function use(api, meterProvider) {
  if (meterProvider === provider) return;
  provider = meterProvider;
  if (meterProvider === null) {
    instruments = null;
    return;
  }
  const meter = meterProvider.getMeter("@aibind-rs/postgres");
  const seconds = { unit: "s", advice: { explicitBucketBoundaries: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10] } };
  instruments = {
    duration: meter.createHistogram("db.client.operation.duration", {
      description: "Duration of database client operations (the Rust pool's round trips).",
      ...seconds,
    }),
    timeouts: meter.createCounter("db.client.connection.timeouts", {
      description: "Calls that timed out waiting for a connection of the pool.",
      unit: "{timeout}",
    }),
    reconnects: meter.createCounter("aibind.listener.reconnects", {
      description: "LISTEN connections that ended (lost, deaf, read-only) and were opened again.",
      unit: "{reconnect}",
    }),
    settled: meter.createCounter("aibind.append.unknown_settled", {
      description:
        "Appends sent again after an unknown outcome, by how it ended: stored (sent again), landed (the first attempt had landed), unknown (APPEND_OUTCOME_UNKNOWN).",
      unit: "{append}",
    }),
    combined: meter.createHistogram("aibind.append.combined", {
      description: "Store calls served per combined statement.",
      unit: "{call}",
      advice: { explicitBucketBoundaries: [1, 2, 4, 8, 16, 32, 64, 128, 256] },
    }),
    lag: meter.createHistogram("aibind.delivery.lag", {
      description:
        "From a chunk's commit to a reader handing it to the app (chunks this process knew: appended here, or carried by a NOTIFY).",
      unit: "s",
      advice: {
        explicitBucketBoundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      },
    }),
  };
  const count = meter.createObservableUpDownCounter("db.client.connection.count", {
    description: "Connections of the pool, by state.",
    unit: "{connection}",
  });
  const max = meter.createObservableUpDownCounter("db.client.connection.max", { unit: "{connection}" });
  const pending = meter.createObservableUpDownCounter("db.client.connection.pending_requests", {
    description: "Calls waiting for a connection of the pool.",
    unit: "{request}",
  });
  const waiting = meter.createObservableUpDownCounter("aibind.readers.waiting", {
    description: "Readers waiting for news (the pool's shared check).",
    unit: "{reader}",
  });
  const sent = meter.createObservableCounter("aibind.notify.sent", {
    description: "NOTIFY statements the pool sent (payloads of chunks written).",
    unit: "{notification}",
  });
  const received = meter.createObservableCounter("aibind.notify.received", {
    description: "Notifications the LISTEN connection received.",
    unit: "{notification}",
  });
  meter.addBatchObservableCallback(
    (observer) => {
      for (const [name, s] of statuses()) {
        const pool = { "db.client.connection.pool.name": name };
        observer.observe(count, s.idle ?? 0, { ...pool, "db.client.connection.state": "idle" });
        observer.observe(count, s.inUse ?? 0, { ...pool, "db.client.connection.state": "used" });
        observer.observe(max, s.maxSize ?? 0, pool);
        observer.observe(pending, s.waiting ?? 0, pool);
        observer.observe(waiting, s.readersWaiting, pool);
        observer.observe(sent, s.notificationsSent ?? 0, pool);
        observer.observe(received, s.notificationsReceived ?? 0, pool);
      }
    },
    [count, max, pending, waiting, sent, received],
  );
}

/** Whether metrics are recorded. */
function active() {
  return instruments !== null;
}

/** An append whose earlier attempt's outcome was unknown ended `outcome` (lib/appends.cjs). */
function settled(outcome) {
  instruments?.settled.add(1, { "aibind.outcome": outcome });
}

const FROM_PROCESS = Object.freeze({ "aibind.delivery.source": "process" });
const FROM_NOTIFY = Object.freeze({ "aibind.delivery.source": "notify" });

/**
 * A reader handed the app a chunk committed `ms` milliseconds before (lib/stream-store.cjs);
 * `heard`: its commit time came through a NOTIFY (another clock's), not from this process.
 */
function delivered(ms, heard) {
  instruments?.lag.record(Math.max(0, ms) / 1000, heard ? FROM_NOTIFY : FROM_PROCESS);
}

/** A record of the Rust pool (lib/telemetry.cjs). */
function record(r) {
  if (instruments === null) return;
  const pool = `${r.serverAddress ?? ""}:${r.serverPort ?? ""}/${r.database ?? ""}`;
  if (r.kind === "query") {
    const attributes = { "db.system.name": "postgresql" };
    if (r.operation) attributes["db.operation.name"] = r.operation;
    if (r.collection) attributes["db.collection.name"] = r.collection;
    if (r.summary) attributes["db.query.summary"] = r.summary;
    if (r.database) attributes["db.namespace"] = r.database;
    if (r.serverAddress) attributes["server.address"] = r.serverAddress;
    if (r.serverPort) attributes["server.port"] = r.serverPort;
    if (r.code) attributes["error.type"] = r.code;
    if (r.sqlState) attributes["db.response.status_code"] = r.sqlState;
    instruments.duration.record(Math.max(0, r.end - r.start) / 1000, attributes);
    if (r.batchSize) instruments.combined.record(r.batchSize);
  } else if (r.kind === "checkout" && r.detail === "timeout") {
    instruments.timeouts.add(1, { "db.client.connection.pool.name": pool });
  } else if (r.kind === "unlisten") {
    instruments.reconnects.add(1, { reason: r.detail ?? "lost" });
  }
}

module.exports = { use, active, record, register, settled, delivered };
