// An OpenTelemetry SDK whose sampler keeps nothing: no span is recorded, and the store's
// calls are not numbered for the Rust pool, which then gathers nothing for them (a tracer
// alone wants only the round trips of sampled calls; src/telemetry.rs).
import { createRequire } from "node:module";
import dc from "node:diagnostics_channel";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { adminPool, collect, DATABASE_URL, freshSchema, uid } from "./helpers.js";

const telemetry = createRequire(import.meta.url)("../lib/telemetry.cjs") as {
  state: { on: boolean; all: boolean; tracing: boolean };
};
const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
const exporter = new InMemorySpanExporter();

beforeAll(async () => {
  tables = await freshSchema(admin);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ sampler: new AlwaysOffSampler(), spanProcessors: [new SimpleSpanProcessor(exporter)] }),
  );
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

it("records no span and numbers no call", async () => {
  const appends: Array<Record<string, unknown>> = [];
  const channel = dc.tracingChannel("aibind-rs:stream:append");
  const subscribers = {
    start: (c: object) => void appends.push({ ...c }),
    end() {},
    asyncStart() {},
    asyncEnd() {},
    error() {},
  };
  channel.subscribe(subscribers);
  const store = new PostgresStreamStore(DATABASE_URL, tables.stream);
  const id = uid("off");
  await trace.getTracer("app").startActiveSpan("request", async (span) => {
    await store.create(id);
    await store.append(id, "a");
    await store.complete(id);
    expect(await collect(store.readFrom(id, 0))).toEqual([{ seq: 1, data: "a" }]);
    span.end();
  });
  channel.unsubscribe(subscribers);
  expect(telemetry.state).toMatchObject({ tracing: true, on: true, all: false });
  expect(appends).toHaveLength(1);
  expect(appends[0].call).toBeUndefined();
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(exporter.getFinishedSpans()).toEqual([]);
  await store.close();
});
