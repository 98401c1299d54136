// Diagnostics channels: each store operation is published on a `node:diagnostics_channel`
// tracing channel (start, end, asyncStart, asyncEnd, error), as mysql2, undici and
// fastify publish theirs, for APM agents and OpenTelemetry instrumentations to subscribe
// to with no dependency. Nothing is built, and nothing runs, while nobody subscribes.
//
// Channel names (stable; docs/observability.md):
//   aibind-rs:stream:create  :append  :read (one per page a reader reads)  :stop
//   :complete  :fail  :getStatus  :cleanup
//   aibind-rs:conversation:save  :load  :delete  :cleanup
//
// The context of each event: `store` ("stream" | "conversation"), `operation`, `table`,
// `backend` ("rust-pool" | "js-client"), `serverAddress`, `serverPort`, `database` (never
// a user or password), then `result` or `error` as the tracing channel sets them (an
// error carries `code`, `sqlState`, `retryable`). Never parameter values or chunk text;
// a stream or session id only with the store option `diagnosticIds: true`.
"use strict";

const dc = require("node:diagnostics_channel");
const telemetry = require("./telemetry.cjs");

/** @type {Map<string, import("node:diagnostics_channel").TracingChannel<object, object>>} */
const channels = new Map();

/** Node 18.17 and 18.18 have no tracing channels: there, nothing is published. */
const NO_CHANNEL = /** @type {import("node:diagnostics_channel").TracingChannel<object, object>} */ (
  /** @type {unknown} */ ({ hasSubscribers: false })
);

/** The tracing channel of operation `name` (made on first use). */
function channel(name) {
  if (typeof dc.tracingChannel !== "function") return NO_CHANNEL;
  let found = channels.get(name);
  if (found === undefined) {
    found = dc.tracingChannel(`aibind-rs:${name}`);
    channels.set(name, found);
  }
  return found;
}

/**
 * Where a store's statements go, as far as its client says: host, port and database,
 * never credentials; only `backend` when the client does not say (a `{ query }` adapter).
 */
function targetOf(client, backend) {
  /** @type {{ backend: string, serverAddress?: string, serverPort?: number, database?: string }} */
  const target = { backend };
  try {
    if (typeof client === "string") {
      const url = new URL(client);
      target.serverAddress = decodeURIComponent(url.hostname).replace(/^\[|\]$/g, "") || undefined;
      target.serverPort = url.port ? Number(url.port) : 5432;
      target.database = decodeURIComponent(url.pathname.slice(1)) || undefined;
    } else {
      const params = client?.options ?? client?.connectionParameters;
      if (params && typeof params === "object") {
        if (typeof params.connectionString === "string") return targetOf(params.connectionString, backend);
        if (typeof params.host === "string") target.serverAddress = params.host;
        if (typeof params.port === "number") target.serverPort = params.port;
        if (typeof params.database === "string") target.database = params.database;
      }
    }
  } catch {
    // a connection string URL cannot parse (key=value form): no address to report
  }
  return target;
}

/**
 * What an event's `result` shows of an operation's value: a seq or a count as it is, a
 * status's state and count, a page's number of chunks; never text (chunks, a failure's
 * message, a conversation's JSON).
 */
function summary(value) {
  if (value === null || value === undefined || typeof value === "number") return value;
  if (typeof value?.seqs?.length === "number") return { chunks: value.seqs.length };
  if (typeof value?.state === "string") return { state: value.state, totalChunks: value.totalChunks };
  return typeof value === "string" ? { found: true } : undefined;
}

/**
 * Runs `fn` (which returns a promise) as operation `name`, published on its tracing
 * channel when anyone subscribes; `context()` makes the event's context only then.
 * `hasSubscribers` is undefined on Node versions before 20.13: then it publishes. With
 * anyone listening to the pool's channels or an OpenTelemetry SDK (lib/telemetry.cjs),
 * the operation is numbered for the pool's records and traced.
 */
function traced(name, context, fn) {
  const ch = channel(name);
  const on = telemetry.refresh();
  const publish = ch.hasSubscribers !== false;
  if (!publish && !on) return fn();
  const ctx = context();
  // Started (span, number) before the channel's `start`, which then sees `call`.
  const operation = on ? telemetry.operation(name, ctx) : undefined;
  const run = operation ? () => operation(fn) : fn;
  if (!publish) return run();
  let value;
  // Publishing: a real tracing channel (NO_CHANNEL has no subscribers).
  const tracing = /** @type {import("node:diagnostics_channel").TracingChannel<object, object>} */ (ch);
  return tracing.tracePromise(async () => summary((value = await run())), ctx).then(() => value);
}

/**
 * Whether operation `name` runs unobserved now (no subscriber to its channel, no
 * telemetry): what `traced` finds before it runs `fn` as it is. A reader then takes a
 * page its native half knows without wrapping it in a promise.
 */
function quiet(name) {
  return channel(name).hasSubscribers === false && !telemetry.refresh();
}

module.exports = { traced, quiet, targetOf };
