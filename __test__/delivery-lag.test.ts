// The delivery lag (`aibind.delivery.lag`, lib/metrics.cjs) with the real SDK's meter:
// one record per chunk a reader hands to the app, from the chunk's commit. A reader in
// the writer's own process times it from the append's acknowledgement; a reader in
// another process from the time the NOTIFY carries (`t`, src/backend/notify.rs).
import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { metrics } from "@opentelemetry/api";
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type Histogram,
} from "@opentelemetry/sdk-metrics";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, collect, eventually, freshSchema, sleep, uid, urlWithApp } from "./helpers.js";

const require = createRequire(import.meta.url);
const run = promisify(execFile);
const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
const exporter = new InMemoryMetricExporter(AggregationTemporality.DELTA);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });

beforeAll(async () => {
  tables = await freshSchema(admin);
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

type Point = { value: Histogram; attributes: Record<string, unknown> };

/** The lag's records since the last call, by their `aibind.delivery.source`. */
async function lags(): Promise<Map<unknown, Histogram>> {
  exporter.reset();
  await reader.forceFlush();
  const points = exporter
    .getMetrics()
    .flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))
    .filter((m) => m.descriptor.name === "aibind.delivery.lag")
    .flatMap((m) => {
      expect(m.descriptor.unit).toBe("s");
      return m.dataPoints as Point[];
    });
  for (const p of points) expect(Object.keys(p.attributes)).toEqual(["aibind.delivery.source"]);
  return new Map(points.map((p) => [p.attributes["aibind.delivery.source"], p.value]));
}

const expected = (n: number) => Array.from({ length: n }, (_, i) => ({ seq: i + 1, data: `chunk ${i + 1}` }));

it.each([
  ["a connection string", () => ({ client: DATABASE_URL, end: async () => {} })],
  [
    "a pg.Pool",
    () => {
      const pool = new pg.Pool({ connectionString: DATABASE_URL });
      return { client: pool, end: () => pool.end() };
    },
  ],
] as const)(
  "%s: a reader in the writer's process has one record per chunk it hands out, from the append's commit",
  async (_, make) => {
    const { client, end } = make();
    const store = new PostgresStreamStore(client, tables.stream);
    const id = uid("lag");
    await store.create(id);
    await lags(); // from here on
    const reading = collect(store.readFrom(id, 0));
    await sleep(300); // the reader waits at the end of the stream
    for (let i = 1; i <= 5; i++) {
      await store.append(id, `chunk ${i}`);
      await sleep(20);
    }
    await store.complete(id);
    expect(await reading).toEqual(expected(5));
    const found = await lags();
    expect([...found.keys()]).toEqual(["process"]);
    const lag = found.get("process")!;
    expect(lag.count).toBe(5);
    expect(lag.min).toBeGreaterThan(0);
    expect(lag.max).toBeLessThan(2);
    await store.close();
    await end();
  },
);

it("a page read from the database (a reader catching up) records nothing: its commit time is not known", async () => {
  const store = new PostgresStreamStore(DATABASE_URL, tables.stream);
  const id = uid("lag-history");
  await store.create(id);
  for (let i = 1; i <= 3; i++) await store.append(id, `chunk ${i}`);
  await store.complete(id);
  await lags();
  expect(await collect(store.readFrom(id, 0))).toEqual(expected(3));
  expect((await lags()).size).toBe(0);
  await store.close();
});

it("a reader in another process: one record per chunk, from the time its NOTIFY carries", async () => {
  const app = `aibind_lag_${uid().slice(2, 14)}`;
  const store = new PostgresStreamStore(urlWithApp(app), { ...tables.stream, pollIntervalMs: 60_000 });
  const id = uid("lag-elsewhere");
  await store.create(id);
  await lags();
  const reading = collect(store.readFrom(id, 0));
  await eventually(async () => {
    const { rows } = await admin.query(
      "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND query = 'LISTEN aibind_stream_writes'",
      [app],
    );
    return rows.length === 1;
  });
  // The writer measures too (a meter provider registered), so that the chunks its pool
  // announces after their commit carry its time; those its appends announce themselves
  // carry the database server's. A new pool's first 8 lone appends are announced after
  // their commit, the next 8 inside (src/backend/notify_choice.rs): 20 take both ways.
  const url = (name: string) => JSON.stringify(pathToFileURL(require.resolve(name)).href);
  const script = `
    const { metrics } = await import(${url("@opentelemetry/api")});
    const { MeterProvider } = await import(${url("@opentelemetry/sdk-metrics")});
    metrics.setGlobalMeterProvider(new MeterProvider());
    const { PostgresStreamStore } = await import(${JSON.stringify(pathToFileURL(require.resolve("../index.js")).href)});
    const store = new PostgresStreamStore(process.env.DATABASE_URL, ${JSON.stringify(tables.stream)});
    for (let i = 1; i <= 20; i++) {
      await store.append(${JSON.stringify(id)}, "chunk " + i);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await store.complete(${JSON.stringify(id)});
    await store.close();
  `;
  await run(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, DATABASE_URL },
    timeout: 20_000,
  });
  expect(await reading).toEqual(expected(20));
  const found = await lags();
  expect([...found.keys()]).toEqual(["notify"]);
  const lag = found.get("notify")!;
  expect(lag.count).toBe(20);
  expect(lag.min).toBeGreaterThan(0);
  expect(lag.max).toBeLessThan(2);
  await store.close();
});
