// `npm run bench`: this package (Rust pool, and over a pg.Pool) against the original's
// algorithm over pg (benchmark/baseline.mjs), in one run against one PostgreSQL. Prints a
// table and writes benchmark/results.json.
import { writeFileSync } from "node:fs";
import os from "node:os";
import pg from "pg";
import { PostgresConversationStore, PostgresStreamStore } from "../index.js";
import { BaselineConversationStore, BaselineStreamStore } from "./baseline.mjs";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is not set: run `npm run bench`");

const admin = new pg.Pool({ connectionString: url, max: 2 });
const jsPool = new pg.Pool({ connectionString: url, max: 10 });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const median = (values) => quantile(values, 0.5);

let schemas = 0;
async function freshTables() {
  const schema = `bench_${process.pid}_${schemas++}`;
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.aibind_stream_chunks (id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (id, seq));
    CREATE TABLE ${schema}.aibind_stream_status (id TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'active', error TEXT,
      total_chunks INTEGER NOT NULL DEFAULT 0, expires_at BIGINT NOT NULL);
    CREATE TABLE ${schema}.aibind_conversations (session_id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL);`);
  return {
    schema,
    stream: { chunksTable: `${schema}.aibind_stream_chunks`, statusTable: `${schema}.aibind_stream_status` },
    conversation: { table: `${schema}.aibind_conversations` },
    drop: () => admin.query(`DROP SCHEMA ${schema} CASCADE`),
  };
}

const modes = [
  {
    name: "rust pool (connection string)",
    key: "native",
    streams: (t, o = {}) => new PostgresStreamStore(url, { ...t.stream, ...o }),
    conversations: (t) => new PostgresConversationStore(url, t.conversation),
  },
  {
    name: "JS client (pg.Pool)",
    key: "js",
    streams: (t, o = {}) => new PostgresStreamStore(jsPool, { ...t.stream, ...o }),
    conversations: (t) => new PostgresConversationStore(jsPool, t.conversation),
  },
  {
    name: "baseline: original algorithm over pg.Pool",
    key: "baseline",
    streams: (t, o = {}) => new BaselineStreamStore(jsPool, { ...t.stream, ...o }),
    conversations: (t) => new BaselineConversationStore(jsPool, t.conversation),
  },
];

/** 50 streams, each appending 200 chunks one after another; all streams at once. */
async function appendThroughput(mode) {
  const t = await freshTables();
  const store = mode.streams(t);
  const ids = Array.from({ length: 50 }, (_, i) => `s${i}`);
  for (const id of ids) await store.create(id);
  const start = performance.now();
  await Promise.all(
    ids.map(async (id) => {
      for (let i = 0; i < 200; i++) await store.append(id, `token ${i} `);
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  await store.close?.();
  await t.drop();
  return { chunksPerSecond: Math.round((50 * 200) / seconds) };
}

/** One writer appends 100 chunks 20 ms apart; a live reader notes when each arrives. */
async function liveTail(mode) {
  const t = await freshTables();
  const store = mode.streams(t);
  const id = "tail";
  await store.create(id);
  const sentAt = new Map();
  const lags = [];
  const reader = (async () => {
    for await (const chunk of store.readFrom(id, 0)) lags.push(performance.now() - sentAt.get(chunk.seq));
  })();
  for (let i = 1; i <= 100; i++) {
    sentAt.set(i, performance.now());
    await store.append(id, `token ${i} `);
    await sleep(20);
  }
  await store.complete(id);
  await reader;
  await store.close?.();
  await t.drop();
  return { p50Ms: +median(lags).toFixed(2), p99Ms: +quantile(lags, 0.99).toFixed(2) };
}

/** Reading back a finished 10,000-chunk stream from the start. */
async function replay(mode) {
  const t = await freshTables();
  const store = mode.streams(t);
  await admin.query(`INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ('r', 'done', 10000, $1)`, [Date.now() + 1e6]);
  await admin.query(`INSERT INTO ${t.stream.chunksTable} (id, seq, data) SELECT 'r', g, 'token number ' || g || ' ' FROM generate_series(1, 10000) g`);
  const times = [];
  for (let run = 0; run < 7; run++) {
    const start = performance.now();
    let n = 0;
    for await (const _ of store.readFrom("r", 0)) n++;
    if (n !== 10000) throw new Error(`replay read ${n} chunks`);
    times.push(performance.now() - start);
  }
  await store.close?.();
  await t.drop();
  return { medianMs: +median(times).toFixed(2) };
}

/** Removing 2,000 expired streams of 5 chunks each (after one untimed round, so that
 *  prepared statements are warm, as they are in a running app). */
async function cleanup(mode) {
  const t = await freshTables();
  const store = mode.streams(t, { ttlMs: 0 });
  const times = [];
  for (let run = 0; run < 4; run++) {
    await admin.query(`INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) SELECT 'c' || g, 'done', 5, 1 FROM generate_series(1, 2000) g`);
    await admin.query(`INSERT INTO ${t.stream.chunksTable} (id, seq, data) SELECT 'c' || g, s, 'x' FROM generate_series(1, 2000) g, generate_series(1, 5) s`);
    const start = performance.now();
    await store.cleanup();
    if (run > 0) times.push(performance.now() - start);
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${t.stream.chunksTable}`);
    if (rows[0].n !== 0) throw new Error("cleanup left chunks");
  }
  await store.close?.();
  await t.drop();
  return { medianMs: +median(times).toFixed(2) };
}

/** Save then load a 20-message conversation, 10 sessions at once, 2,000 pairs. */
async function conversations(mode) {
  const t = await freshTables();
  const store = mode.conversations(t);
  const json = JSON.stringify({ messages: Array.from({ length: 20 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: "lorem ipsum ".repeat(20) })) });
  const start = performance.now();
  await Promise.all(
    Array.from({ length: 10 }, async (_, worker) => {
      for (let i = 0; i < 200; i++) {
        await store.saveJSON(`w${worker}-${i % 20}`, json);
        if ((await store.loadJSON(`w${worker}-${i % 20}`)) !== json) throw new Error("load mismatch");
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  await store.close?.();
  await t.drop();
  return { pairsPerSecond: Math.round(2000 / seconds) };
}

const figures = [
  ["append throughput (50 streams x 200 appends)", appendThroughput, (r) => `${r.chunksPerSecond} chunks/s`, (r) => r.chunksPerSecond, true],
  ["live tail, same process", liveTail, (r) => `p50 ${r.p50Ms} / p99 ${r.p99Ms} ms`, (r) => r.p50Ms, false],
  ["replay 10,000 chunks", replay, (r) => `${r.medianMs} ms`, (r) => r.medianMs, false],
  ["cleanup 2,000 streams", cleanup, (r) => `${r.medianMs} ms`, (r) => r.medianMs, false],
  ["conversation save+load (10 at once)", conversations, (r) => `${r.pairsPerSecond} pairs/s`, (r) => r.pairsPerSecond, true],
];

const { rows: versionRows } = await admin.query("SHOW server_version");
const results = {
  when: new Date().toISOString(),
  machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.arch()}`,
  node: process.version,
  postgres: versionRows[0].server_version,
  figures: {},
};

// Warm up each mode (connections, prepared statements, JIT) before measuring.
for (const mode of modes) {
  await replay(mode);
  await appendThroughput(mode);
}

// Each figure is measured ROUNDS times per mode, the modes taking turns in a rotating
// order (so no mode always runs right after another warmed the server); the median
// round is reported.
const ROUNDS = 3;
const table = [];
for (const [label, run, show, value, higherIsBetter] of figures) {
  const row = { figure: label };
  const rounds = Object.fromEntries(modes.map((m) => [m.key, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < modes.length; i++) {
      const mode = modes[(i + round) % modes.length];
      rounds[mode.key].push(await run(mode));
    }
  }
  const measured = {};
  for (const mode of modes) {
    const sorted = [...rounds[mode.key]].sort((a, b) => value(a) - value(b));
    measured[mode.key] = sorted[Math.floor(sorted.length / 2)];
  }
  const base = value(measured.baseline);
  for (const mode of modes) {
    const ratio = higherIsBetter ? value(measured[mode.key]) / base : base / value(measured[mode.key]);
    row[mode.key] = `${show(measured[mode.key])}${mode.key === "baseline" ? "" : ` (${ratio.toFixed(2)}x)`}`;
  }
  results.figures[label] = measured;
  table.push(row);
  console.error(`measured: ${label}`);
}

console.log(`\n${results.machine}; Node ${results.node}; PostgreSQL ${results.postgres}`);
console.log("ratios: how many times better than the baseline (higher is better)\n");
const headers = ["figure", ...modes.map((m) => m.key)];
const titles = ["figure", ...modes.map((m) => m.name)];
const widths = headers.map((h, i) => Math.max(titles[i].length, ...table.map((r) => String(r[h]).length)));
const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(" | ")} |`;
console.log(line(titles));
console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
for (const row of table) console.log(line(headers.map((h) => row[h])));
writeFileSync(new URL("./results.json", import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
console.log("\nwritten: benchmark/results.json");

await jsPool.end();
await admin.end();
