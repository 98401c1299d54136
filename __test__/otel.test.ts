// OpenTelemetry (lib/telemetry.cjs, lib/metrics.cjs) with the real SDK: an in-memory span
// exporter and a metric reader. Each store operation is an INTERNAL span under the
// caller's; each round trip of the Rust pool a CLIENT span under the operation it served,
// named by db.query.summary; a JS client gets only the INTERNAL spans. Nothing the app
// wrote (chunks, ids, messages) is in any span or metric.
import { createRequire } from "node:module";
import { context, metrics, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from "@opentelemetry/sdk-metrics";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from "@opentelemetry/sdk-trace-base";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, collect, freshSchema, rejection, sleep, uid, urlWithApp } from "./helpers.js";

const telemetry = createRequire(import.meta.url)("../lib/telemetry.cjs") as {
  state: { on: boolean; tracing: boolean };
};

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
const exporter = new InMemorySpanExporter();
const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
const target = new URL(DATABASE_URL);
const SECRETS = ["secret-id", "secret-chunk", "secret-reason", "secret-session", "secret-history"];

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

/** Every span exported so far, after the pool's records of them have arrived. */
async function spans(): Promise<ReadableSpan[]> {
  await sleep(300);
  return exporter.getFinishedSpans();
}
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const idOf = (s: ReadableSpan) => s.spanContext().spanId;

it("with no SDK registered, nothing is gathered", async () => {
  const store = new PostgresStreamStore(DATABASE_URL, tables.stream);
  const id = uid("quiet");
  await store.create(id);
  await store.append(id, "a");
  expect(telemetry.state).toMatchObject({ on: false, tracing: false });
  await store.close();
});

it("registers the SDK", () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
});

it("a connection string: INTERNAL spans under the caller's, CLIENT spans under them, named by db.query.summary", async () => {
  exporter.reset();
  const store = new PostgresStreamStore(DATABASE_URL, tables.stream);
  const chats = new PostgresConversationStore(DATABASE_URL, tables.conversation);
  const id = uid("secret-id");
  const session = uid("secret-session");
  await trace.getTracer("app").startActiveSpan("GET /api/chat", async (request) => {
    await store.create(id);
    await store.append(id, "secret-chunk-1");
    await store.fail(id, "secret-reason");
    expect(await collect(store.readFrom(id, 0))).toEqual([{ seq: 1, data: "secret-chunk-1" }]);
    await chats.saveJSON(session, '{"secret-history":1}');
    await chats.loadJSON(session);
    request.end();
  });
  const all = await spans();
  const request = all.find((s) => s.name === "GET /api/chat")!;
  const internal = all.filter((s) => s.kind === SpanKind.INTERNAL && s !== request);
  expect([...new Set(internal.map((s) => s.name))].sort()).toEqual(
    ["conversation.load", "conversation.save", "stream.append", "stream.create", "stream.fail", "stream.read"].sort(),
  );
  for (const s of internal) {
    expect(parentOf(s)).toBe(idOf(request));
    expect(s.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(s.attributes).toMatchObject({
      "db.system.name": "postgresql",
      "db.namespace": target.pathname.slice(1),
      "server.address": target.hostname,
      "server.port": Number(target.port || 5432),
      "aibind.backend": "rust-pool",
    });
  }
  const append = internal.find((s) => s.name === "stream.append")!;
  expect(append.attributes["db.collection.name"]).toBe(tables.stream.chunksTable);

  const client = all.filter((s) => s.kind === SpanKind.CLIENT);
  // Each operation made at least one round trip, each under its operation (but a page a
  // reader takes from what this process already knows makes none).
  for (const op of internal) {
    const under = client.filter((c) => parentOf(c) === idOf(op));
    if (op.name !== "stream.read") expect(under.length, `round trips of ${op.name}`).toBeGreaterThanOrEqual(1);
    for (const c of under) {
      expect(c.name).toBe(c.attributes["db.query.summary"]);
      expect(c.startTime[0] * 1e3 + c.startTime[1] / 1e6).toBeLessThanOrEqual(c.endTime[0] * 1e3 + c.endTime[1] / 1e6);
    }
  }
  const pages = internal.filter((s) => s.name === "stream.read");
  expect(client.some((c) => pages.some((p) => parentOf(c) === idOf(p)))).toBe(true);
  const appended = client.find((c) => parentOf(c) === idOf(append))!;
  expect(appended.name).toContain(`INSERT ${tables.stream.chunksTable}`);
  expect(appended.attributes).toMatchObject({
    "db.system.name": "postgresql",
    "db.namespace": target.pathname.slice(1),
    "db.operation.name": "UPDATE", // the first of `UPDATE status INSERT chunks`
    "server.address": target.hostname,
    "server.port": Number(target.port || 5432),
  });
  expect(appended.attributes["db.query.text"]).toContain("$2::text");
  const saved = client.find((c) => parentOf(c) === idOf(internal.find((s) => s.name === "conversation.save")!))!;
  expect(saved.attributes["db.collection.name"]).toBe(tables.conversation.table);

  // Nothing the app wrote is in any span.
  const shown = JSON.stringify(
    all.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events, links: s.links })),
  );
  for (const secret of SECRETS) expect(shown).not.toContain(secret);
  await store.close();
  await chats.close();
});

it("appends combined into one statement: one CLIENT span with the batch size, linking the calls it served", async () => {
  exporter.reset();
  const store = new PostgresStreamStore(urlWithApp(uid("otel-combined")), { ...tables.stream, poolSize: 1 });
  const ids = Array.from({ length: 12 }, () => uid("s"));
  await Promise.all(ids.map((id) => store.create(id)));
  await trace.getTracer("app").startActiveSpan("burst", async (burst) => {
    await Promise.all(ids.map((id, i) => store.append(id, `c${i}`)));
    burst.end();
  });
  const all = await spans();
  const appends = all.filter((s) => s.name === "stream.append");
  expect(appends).toHaveLength(ids.length);
  const batches = all.filter((s) => s.kind === SpanKind.CLIENT && Number(s.attributes["db.operation.batch.size"]) > 1);
  expect(batches.length).toBeGreaterThanOrEqual(1);
  const appendIds = new Set(appends.map(idOf));
  for (const batch of batches) {
    expect(batch.links).toHaveLength(Number(batch.attributes["db.operation.batch.size"]));
    for (const link of batch.links) expect(appendIds.has(link.context.spanId)).toBe(true);
    expect(appendIds.has(parentOf(batch)!)).toBe(true);
  }
  await store.close();
});

it("an error: both spans say it (error status, error.type, the SQLSTATE)", async () => {
  exporter.reset();
  const store = new PostgresStreamStore(DATABASE_URL, {
    chunksTable: "otel_missing_chunks",
    statusTable: "otel_missing_status",
  });
  const err = await rejection(store.create(uid("secret-id")));
  expect(err.sqlState).toBe("42P01");
  const all = await spans();
  const create = all.find((s) => s.name === "stream.create")!;
  expect(create.status.code).toBe(SpanStatusCode.ERROR);
  expect(create.attributes).toMatchObject({ "error.type": err.code, "db.response.status_code": "42P01" });
  // The create's own round trip (a new pool first asks whether the database has Citus).
  const client = all.find(
    (s) =>
      s.kind === SpanKind.CLIENT &&
      parentOf(s) === idOf(create) &&
      !String(s.attributes["db.query.text"]).includes("pg_extension"),
  )!;
  expect(client.status.code).toBe(SpanStatusCode.ERROR);
  expect(client.attributes).toMatchObject({ "error.type": err.code, "db.response.status_code": "42P01" });
  await store.close();
});

it("a reader: a span per page read, its wait a `woken` event, not one long span", async () => {
  const store = new PostgresStreamStore(DATABASE_URL, tables.stream);
  const id = uid("read");
  await store.create(id);
  exporter.reset();
  const read = collect(store.readFrom(id, 0));
  await sleep(300);
  await store.append(id, "late");
  await store.complete(id);
  expect(await read).toEqual([{ seq: 1, data: "late" }]);
  const pages = (await spans()).filter((s) => s.name === "stream.read");
  expect(pages.length).toBeGreaterThanOrEqual(2);
  const woken = pages.flatMap((p) => p.events.filter((e) => e.name === "aibind.reader.woken"));
  expect(woken.length).toBeGreaterThanOrEqual(1);
  // The reader waited from its first (empty) page until the append, 300 ms later.
  expect(Math.max(...woken.map((e) => Number(e.attributes?.["aibind.waited_ms"])))).toBeGreaterThan(100);
  for (const p of pages) {
    const ms = (p.endTime[0] - p.startTime[0]) * 1e3 + (p.endTime[1] - p.startTime[1]) / 1e6;
    expect(ms).toBeLessThan(250); // a page, not the wait
  }
  await store.close();
});

it("a reader's pages, prefetched ones too, sit under the caller's span at readFrom, wherever next() is called", async () => {
  const store = new PostgresStreamStore(DATABASE_URL, tables.stream);
  const id = uid("prefetch");
  await store.create(id);
  // Chunks over 2 KiB are each a page of their own: the next page is there already
  // while the app takes one, so it is asked for then (prefetched).
  const chunks = ["a", "x".repeat(3000), "y".repeat(3000), "b"];
  for (const chunk of chunks) await store.append(id, chunk);
  await store.complete(id);
  exporter.reset();
  const app = trace.getTracer("app");
  const taken: string[] = [];
  await app.startActiveSpan("GET /api/stream", async (request) => {
    const reading = store.readFrom(id, 0);
    // The app takes each chunk in a span of its own (as a ReadableStream's pull may run
    // in whatever context its consumer has).
    for (;;) {
      const next = await app.startActiveSpan("take", async (take) => {
        try {
          return await reading.next();
        } finally {
          take.end();
        }
      });
      if (next.done) break;
      taken.push(next.value.data);
    }
    request.end();
  });
  expect(taken).toEqual(chunks);
  const all = await spans();
  const request = all.find((s) => s.name === "GET /api/stream")!;
  const pages = all.filter((s) => s.name === "stream.read");
  expect(pages.length).toBeGreaterThanOrEqual(4);
  for (const page of pages) expect(parentOf(page)).toBe(idOf(request));
  const prefetched = pages.filter((p) => p.attributes["aibind.reader.prefetched"] === true);
  expect(prefetched.length).toBeGreaterThanOrEqual(2);
  // In the order the reader asked for them: the first page is not a prefetched one.
  const ms = (s: ReadableSpan) => s.startTime[0] * 1e3 + s.startTime[1] / 1e6;
  const ordered = [...pages].sort((x, y) => ms(x) - ms(y));
  expect(ordered[0].attributes["aibind.reader.prefetched"]).toBeUndefined();
  await store.close();
});

it("a pg.Pool: only the INTERNAL spans (the driver's instrumentation makes the query spans)", async () => {
  exporter.reset();
  const pool = new pg.Pool({ connectionString: DATABASE_URL });
  const store = new PostgresStreamStore(pool, tables.stream);
  await trace.getTracer("app").startActiveSpan("request", async (request) => {
    const id = uid("pg");
    await store.create(id);
    await store.append(id, "x");
    request.end();
  });
  const all = await spans();
  expect(all.filter((s) => s.kind === SpanKind.CLIENT)).toEqual([]);
  const request = all.find((s) => s.name === "request")!;
  const ops = all.filter((s) => s.name.startsWith("stream."));
  expect(ops.map((s) => s.name).sort()).toEqual(["stream.append", "stream.create"]);
  for (const s of ops) {
    expect(parentOf(s)).toBe(idOf(request));
    expect(s.attributes["aibind.backend"]).toBe("js-client");
  }
  await store.close();
  await pool.end();
});

it("metrics: db.client.operation.duration and the pool's db.client.connection.*", async () => {
  const store = new PostgresStreamStore(urlWithApp(uid("otel-metrics")), { ...tables.stream, poolSize: 3 });
  const id = uid("m");
  await store.create(id);
  await store.append(id, "x");
  await sleep(200);
  await reader.forceFlush();
  const exported = metricExporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
  type Point = { value: unknown; attributes: Record<string, unknown> };
  const named = (name: string): Point[] =>
    exported.filter((m) => m.descriptor.name === name).flatMap((m) => m.dataPoints as Point[]);
  const durations = named("db.client.operation.duration");
  expect(durations.length).toBeGreaterThanOrEqual(1);
  expect(durations[0].attributes).toMatchObject({ "db.system.name": "postgresql", "server.address": target.hostname });
  expect(named("db.client.connection.max").some((p) => p.value === 3)).toBe(true);
  const states = named("db.client.connection.count").map((p) => p.attributes["db.client.connection.state"]);
  expect(states).toEqual(expect.arrayContaining(["idle", "used"]));
  const shown = JSON.stringify(exported);
  for (const secret of SECRETS) expect(shown).not.toContain(secret);
  await store.close();
});

it("metrics: an append whose outcome was unknown, then found stored, counts as landed", async () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL });
  let broken = 0;
  // A client that runs the first append, then loses its answer (as a dropped connection does).
  const client = {
    async query(sql: string, params?: unknown[]) {
      const result = await pool.query(sql, params);
      if (broken === 0 && sql.includes(`INSERT INTO ${tables.stream.chunksTable}`) && params?.[1] === "maybe") {
        broken++;
        throw new Error("Connection terminated unexpectedly");
      }
      return result;
    },
  };
  const store = new PostgresStreamStore(client, tables.stream);
  const id = uid("unknown");
  await store.create(id);
  expect(await store.append(id, "maybe")).toBe(1);
  expect(broken).toBe(1);
  await reader.forceFlush();
  const exported = metricExporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
  const points = exported
    .filter((m) => m.descriptor.name === "aibind.append.unknown_settled")
    .flatMap((m) => m.dataPoints as Array<{ value: unknown; attributes: Record<string, unknown> }>);
  expect(points.find((p) => p.attributes["aibind.outcome"] === "landed")?.value).toBe(1);
  await store.close();
  await pool.end();
});
