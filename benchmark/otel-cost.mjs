// What observability costs appends (the Rust pool): no OpenTelemetry SDK registered, an
// SDK registered with sampling off, and one on (every span kept in memory, metrics read).
// Each configuration runs in a fresh child process (the SDK is process-wide), the three
// taking turns for `rounds` rounds; the median round of each is reported.
//
//   node benchmark/otel-cost.mjs            (against DATABASE_URL)
//   npm run bench                           (a table of its own at the end)
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export const CONFIGS = [
  ["none", "no SDK registered"],
  ["off", "SDK registered, sampling off"],
  ["on", "SDK on (traces + metrics)"],
];
const STREAMS = 20;
const APPENDS = 150;

/** One child's run: 20 streams, 150 awaited appends each, at once. */
async function childRun(config) {
  const api = await import("@opentelemetry/api");
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, AlwaysOffSampler } =
    await import("@opentelemetry/sdk-trace-base");
  const { AsyncLocalStorageContextManager } = await import("@opentelemetry/context-async-hooks");
  const { MeterProvider, InMemoryMetricExporter, PeriodicExportingMetricReader, AggregationTemporality } =
    await import("@opentelemetry/sdk-metrics");
  let spans = () => 0;
  if (config !== "none") {
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const exporter = new InMemorySpanExporter();
    api.trace.setGlobalTracerProvider(
      new BasicTracerProvider({
        spanProcessors: [new SimpleSpanProcessor(exporter)],
        ...(config === "off" ? { sampler: new AlwaysOffSampler() } : {}),
      }),
    );
    spans = () => exporter.getFinishedSpans().length;
    if (config === "on") {
      const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
      const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 1000 });
      api.metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
    }
  }
  const { PostgresStreamStore } = await import("../index.js");
  const store = new PostgresStreamStore(/** @type {string} */ (process.env.DATABASE_URL));
  const tag = `otel-cost-${process.pid}-${Date.now()}`;
  const ids = Array.from({ length: STREAMS }, (_, i) => `${tag}-${i}`);
  const run = async (n) => {
    const latencies = [];
    await Promise.all(
      ids.map(async (id) => {
        for (let i = 0; i < n; i++) {
          const t = performance.now();
          await store.append(id, `token ${i} `);
          latencies.push(performance.now() - t);
        }
      }),
    );
    return latencies;
  };
  for (const id of ids) await store.create(id);
  await run(20); // warm: connections, prepared statements
  const start = performance.now();
  const latencies = await run(APPENDS);
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p) => +latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2);
  await new Promise((resolve) => setTimeout(resolve, 200));
  const result = {
    chunksPerSecond: Math.round((STREAMS * APPENDS) / seconds),
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    spans: spans(),
  };
  await store.cleanup();
  await store.close();
  return result;
}

/** A child process of this script for `config`; resolves what it printed. */
function child(config, url) {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), "--child", config], {
      env: { ...process.env, DATABASE_URL: url },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.on("exit", (code) =>
      code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`child ${config}: exit ${code}`)),
    );
  });
}

/** Each configuration's median round (by throughput), the configurations taking turns. */
export async function measureTelemetryCost(url, rounds = 3) {
  const { migrate } = await import("../index.js");
  await migrate(url);
  /** @type {Record<string, any[]>} */
  const runs = Object.fromEntries(CONFIGS.map(([key]) => [key, []]));
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < CONFIGS.length; i++) {
      const [key] = CONFIGS[(i + round) % CONFIGS.length];
      runs[key].push(await child(key, url));
    }
  }
  return Object.fromEntries(
    CONFIGS.map(([key]) => {
      const sorted = [...runs[key]].sort((a, b) => a.chunksPerSecond - b.chunksPerSecond);
      return [key, { ...sorted[Math.floor(sorted.length / 2)], rounds: runs[key] }];
    }),
  );
}

/** The table, each configuration beside the first. */
export function printTelemetryCost(cost) {
  const base = cost.none;
  console.log(
    `\nobservability cost: ${STREAMS} streams x ${APPENDS} awaited appends at once (Rust pool), median round`,
  );
  console.log("| configuration | chunks/s | vs none | p50 ms | p99 ms | spans |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const [key, name] of CONFIGS) {
    const r = cost[key];
    const ratio = (r.chunksPerSecond / base.chunksPerSecond).toFixed(2);
    console.log(`| ${name} | ${r.chunksPerSecond} | ${ratio} | ${r.p50Ms} | ${r.p99Ms} | ${r.spans} |`);
  }
}

if (process.argv[2] === "--child") {
  process.stdout.write(JSON.stringify(await childRun(process.argv[3])));
} else if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is not set");
  printTelemetryCost(await measureTelemetryCost(url, Number(process.env.ROUNDS ?? 3)));
}
