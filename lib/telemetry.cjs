// What the Rust pool did (src/telemetry.rs) and the store operations, for diagnostics
// channels and OpenTelemetry. Nothing runs unless someone listens: a subscriber to one of
// the pool's channels, or an OpenTelemetry SDK registered through `@opentelemetry/api`
// (an optional peer dependency, loaded on first use; absent, nothing is loaded).
//
// Pool channels (stable; docs/observability.md), published after the fact, in batches,
// with the times in the context:
//   aibind-rs:pool:query     one database round trip: one statement, or one combined batch
//   aibind-rs:pool:checkout  a call waiting for a connection of the pool
//   aibind-rs:pool:connect   the pool opening a connection
//   aibind-rs:listener:listen  the LISTEN connection listening (after a connect)
//   aibind-rs:listener:end     it ended: `reason` "lost", "deaf", "read-only", "not-listening"
//
// Store operations started in JS run inside an INTERNAL span, under the caller's active
// span; each round trip of the Rust pool becomes a CLIENT span under the operation it
// served (a combined batch: under the first, linking the others). The call crosses into
// Rust as a number (`telemetryCall`), since AsyncLocalStorage does not reach tokio.
"use strict";

const dc = require("node:diagnostics_channel");
const { AsyncLocalStorage } = require("node:async_hooks");
const binding = require("./binding.cjs");
const metrics = require("./metrics.cjs");

const POOL_CHANNELS = {
  query: "aibind-rs:pool:query",
  checkout: "aibind-rs:pool:checkout",
  connect: "aibind-rs:pool:connect",
  listen: "aibind-rs:listener:listen",
  unlisten: "aibind-rs:listener:end",
};
/** @type {Record<string, import("node:diagnostics_channel").TracingChannel<object, object>>} */
const poolChannels = {};
// Tracing channels came in Node 18.19: before it, nothing is published.
if (typeof dc.tracingChannel === "function") {
  for (const [kind, name] of Object.entries(POOL_CHANNELS)) poolChannels[kind] = dc.tracingChannel(name);
}

/** `@opentelemetry/api`, or null when it is not installed; undefined until first looked. */
let api;
/** The provider a ProxyTracerProvider hands out while no SDK is registered. */
let noopTracing;
let noopMeter;

function otel() {
  if (api === undefined) {
    try {
      api = require("@opentelemetry/api");
      noopTracing = new api.ProxyTracerProvider().getDelegate();
      noopMeter = api.createNoopMeter?.();
    } catch {
      api = null;
    }
  }
  return api;
}

const state = {
  /** Spans are made (an SDK's tracer provider is registered). */
  tracing: false,
  /** The Rust pool gathers records, and store calls get numbers. */
  on: false,
  /** Every record is wanted (a pool channel's subscriber, metrics), not only spans'. */
  all: false,
  sink: false,
  /** The delivery lag is measured (a meter provider is registered): pages carry ages. */
  lag: false,
};
let lastMeterProvider;
/** The package's tracer, got once from the SDK's provider `tracerOf` (not once a call). */
let tracer;
let tracerOf;
/** Span names by operation name ("stream:append" → "stream.append"). */
const spanNames = new Map();

/**
 * Where `@opentelemetry/api` 1.x keeps what is registered (a tracer or meter provider);
 * absent until something registers: then there is no SDK to ask.
 */
const OTEL_GLOBALS = Symbol.for("opentelemetry.js.api.1");

/** Looks whether anyone listens now; called as each store operation starts. */
function refresh() {
  const a = /** @type {any} */ (globalThis)[OTEL_GLOBALS] === undefined ? null : otel();
  let tracing = false;
  let metering = false;
  if (a !== null) {
    const provider = a.trace.getTracerProvider();
    const delegate = typeof provider.getDelegate === "function" ? provider.getDelegate() : provider;
    tracing = delegate !== noopTracing;
    if (delegate !== tracerOf) {
      tracerOf = delegate;
      tracer = undefined;
    }
    const meterProvider = a.metrics.getMeterProvider();
    if (meterProvider !== lastMeterProvider) {
      lastMeterProvider = meterProvider;
      metrics.use(a, meterProvider.getMeter("@aibind-rs/postgres") === noopMeter ? null : meterProvider);
    }
    metering = metrics.active();
  }
  if (metering !== state.lag) {
    binding.telemetryLag(metering);
    state.lag = metering;
  }
  state.tracing = tracing;
  let all = metering;
  // Before Node 20.13 `hasSubscribers` is undefined: taken as "yes".
  for (const kind in poolChannels) all ||= poolChannels[kind].hasSubscribers !== false;
  const on = tracing || all;
  if (on !== state.on || all !== state.all) {
    if (on && !state.sink) {
      binding.telemetrySink(deliver);
      state.sink = true;
    }
    binding.telemetryEnabled(on, !all);
    binding.telemetryCall(0);
    marked = false;
    state.on = on;
    state.all = all;
  }
  return on;
}

/** Store calls in flight (and lately ended), by number: their span's context. */
let live = new Map();
/** Calls ended lately: this period's and the one before (a record may come a little late). */
let ended = new Map();
let endedBefore = new Map();
let rotating = null;
let nextCall = 0;
const calls = new AsyncLocalStorage();

/** A new number for a store call, also told in its diagnostics event (`call`). */
function numbered(context) {
  const call = (nextCall = (nextCall % 0xfffffffe) + 1);
  context.call = call;
  return call;
}

/** Keeps the contexts of ended calls a while, for records that arrive after them. */
function retire(call, spanContext) {
  live.delete(call);
  if (spanContext === undefined) return;
  ended.set(call, spanContext);
  if (rotating === null) {
    rotating = setInterval(() => {
      if (ended.size === 0 && endedBefore.size === 0 && live.size === 0) {
        clearInterval(/** @type {any} */ (rotating));
        rotating = null;
      }
      endedBefore = ended;
      ended = new Map();
    }, 10_000);
    rotating.unref?.();
  }
}

let clearing = false;
/** Rust was told a call's number that is not cleared yet (else it holds 0). */
let marked = false;
const clear = () => {
  clearing = false;
  marked = false;
  binding.telemetryCall(0);
};

/**
 * Before a call into the native store: tells Rust which store call it is part of. It
 * holds for the calls made in this synchronous run only (cleared in a microtask), so a
 * native call made without `mark()` (a stop signal's watcher, `migrate`) is nobody's.
 */
function mark() {
  if (!state.on) return;
  const call = calls.getStore() ?? 0;
  // Nobody's call (an operation the sampler dropped, with no one wanting every record):
  // Rust holds 0 already, unless a number was told in this run.
  if (call === 0 && !marked) return;
  binding.telemetryCall(call);
  marked = call !== 0;
  if (!clearing) {
    clearing = true;
    queueMicrotask(clear);
  }
}

const ATTRIBUTE = {
  serverAddress: "server.address",
  serverPort: "server.port",
  database: "db.namespace",
  table: "db.collection.name",
  backend: "aibind.backend",
  store: "aibind.store",
  operation: "aibind.operation",
  id: "aibind.id",
  prefetched: "aibind.reader.prefetched",
};

/**
 * Starts the store operation `name` ("stream:append") with the event context `context`:
 * numbered for the pool's records (`context.call`), in an INTERNAL span when tracing.
 * Returns what runs its work `fn` (a function returning a promise) as that operation.
 * @returns {(fn: () => any) => any}
 */
function operation(name, context) {
  if (!state.tracing) {
    const call = numbered(context);
    return (fn) => calls.run(call, fn);
  }
  const a = /** @type {any} */ (api);
  const attributes = { "db.system.name": "postgresql" };
  for (const key in ATTRIBUTE) if (context[key] !== undefined) attributes[ATTRIBUTE[key]] = context[key];
  const parent = a.context.active();
  let spanName = spanNames.get(name);
  if (spanName === undefined) spanNames.set(name, (spanName = name.replace(":", ".")));
  tracer ??= a.trace.getTracer("@aibind-rs/postgres");
  const span = tracer.startSpan(spanName, { kind: a.SpanKind.INTERNAL, attributes }, parent);
  const inSpan = a.trace.setSpan(parent, span);
  const recording = span.isRecording();
  if (!recording) {
    // Not sampled: its context still goes down (what runs under it is not sampled
    // either), but there is nothing to end, record or wait for. It wants no round trips
    // under it: the call is numbered only for whoever wants every record.
    span.end();
    const call = state.all ? numbered(context) : 0;
    return (fn) => (call === 0 ? a.context.with(inSpan, fn) : calls.run(call, () => a.context.with(inSpan, fn)));
  }
  if (context.waitedMs !== undefined) span.addEvent("aibind.reader.woken", { "aibind.waited_ms": context.waitedMs });
  const call = numbered(context);
  live.set(call, inSpan);
  const finish = (err) => {
    if (err) {
      span.setStatus({ code: a.SpanStatusCode.ERROR, message: err?.code });
      span.setAttribute("error.type", err?.code ?? err?.name ?? "Error");
      if (typeof err?.sqlState === "string") span.setAttribute("db.response.status_code", err.sqlState);
    }
    span.end();
    retire(call, inSpan);
  };
  return (fn) => {
    let promise;
    try {
      promise = calls.run(call, () => a.context.with(inSpan, fn));
    } catch (err) {
      finish(err);
      throw err;
    }
    Promise.resolve(promise).then(
      () => finish(undefined),
      (err) => finish(err),
    );
    return promise;
  };
}

/** The context a diagnostics event of a record carries (camelCase, never values). */
function eventOf(r) {
  const event = {
    kind: r.kind,
    startTime: r.start,
    endTime: r.end,
    serverAddress: r.serverAddress ?? undefined,
    serverPort: r.serverPort ?? undefined,
    database: r.database ?? undefined,
  };
  if (r.kind === "query") {
    Object.assign(event, {
      summary: r.summary,
      operation: r.operation ?? undefined,
      table: r.collection ?? undefined,
      text: r.text,
      batchSize: r.batchSize ?? 1,
      calls: r.calls,
    });
  }
  if (r.kind === "checkout") event.opened = r.detail === "opened";
  if (r.kind === "checkout" && r.detail === "timeout") event.timedOut = true;
  if (r.kind === "unlisten") event.reason = r.detail;
  if (r.code) event.error = { code: r.code, sqlState: r.sqlState ?? undefined };
  return event;
}

/** A batch of records from Rust (src/telemetry.rs), on the JS thread. */
function deliver(records) {
  for (const r of records) {
    const channel = poolChannels[r.kind];
    if (channel !== undefined && channel.hasSubscribers !== false) publish(channel, eventOf(r));
    if (r.kind === "query" && state.tracing) clientSpan(r);
    metrics.record(r);
  }
}

/** Publishes a finished record on a tracing channel: start, end, asyncStart, asyncEnd or error. */
function publish(channel, event) {
  channel.start.publish(event);
  channel.end.publish(event);
  channel.asyncStart.publish(event);
  if (event.error) channel.error.publish(event);
  channel.asyncEnd.publish(event);
}

/** A CLIENT span for a round trip, under the store call it served. */
function clientSpan(r) {
  const a = /** @type {any} */ (api);
  const parents = r.calls.map((c) => live.get(c) ?? ended.get(c) ?? endedBefore.get(c)).filter((c) => c !== undefined);
  if (parents.length === 0) return; // not a traced store call's (a NOTIFY, the shared check)
  const attributes = {
    "db.system.name": "postgresql",
    "db.query.summary": r.summary,
    "db.query.text": r.text,
  };
  if (r.operation) attributes["db.operation.name"] = r.operation;
  if (r.collection) attributes["db.collection.name"] = r.collection;
  if (r.database) attributes["db.namespace"] = r.database;
  if (r.serverAddress) attributes["server.address"] = r.serverAddress;
  if (r.serverPort) attributes["server.port"] = r.serverPort;
  if (r.batchSize) attributes["db.operation.batch.size"] = r.batchSize;
  if (r.code) {
    attributes["error.type"] = r.code;
    if (r.sqlState) attributes["db.response.status_code"] = r.sqlState;
  }
  const links =
    parents.length > 1 ? parents.map((c) => ({ context: a.trace.getSpanContext(c), attributes: {} })) : undefined;
  tracer ??= a.trace.getTracer("@aibind-rs/postgres");
  const span = tracer.startSpan(
    r.summary,
    { kind: a.SpanKind.CLIENT, startTime: r.start, attributes, links },
    parents[0],
  );
  if (r.code) span.setStatus({ code: a.SpanStatusCode.ERROR, message: r.code });
  span.end(r.end);
}

/**
 * The caller's context now (its active span), while an SDK traces; undefined otherwise. A
 * reader keeps the one of `readFrom`'s call, so that every page's span sits under it.
 */
function callerContext() {
  refresh();
  return state.tracing ? /** @type {any} */ (api).context.active() : undefined;
}

/** Runs `fn` in `context` (from `callerContext()`), or as it is when there is none. */
function within(context, fn) {
  return context === undefined ? fn() : /** @type {any} */ (api).context.with(context, fn);
}

module.exports = { refresh, operation, mark, state, callerContext, within, POOL_CHANNELS };
