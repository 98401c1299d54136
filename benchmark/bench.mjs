// `npm run bench`: this package (Rust pool, and over a pg.Pool) against the original's
// algorithm over pg (benchmark/baseline.mjs), in one run against one PostgreSQL. Prints a
// table and writes benchmark/results.json. Child processes (benchmark/child.mjs) play the
// second process of the cross-process tail and the replay whose memory is measured.
import { execFile, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import os from "node:os";
import { promisify } from "node:util";
import pg from "pg";
import { makeModes, wallMs } from "./modes.mjs";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is not set: run `npm run bench`");

const run = promisify(execFile);
const only = process.env.BENCH_ONLY; // a substring of figure labels: run just those
const admin = new pg.Pool({ connectionString: url, max: 2 });
const { modes, end: endModes } = makeModes(url);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const median = (values) => quantile(values, 0.5);
const child = (args) => run(process.execPath, ["--expose-gc", new URL("./child.mjs", import.meta.url).pathname, ...args], { env: { ...process.env, DATABASE_URL: url }, maxBuffer: 1 << 20 });

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

/** One producer, as DurableStream does: 1,000 appends to one stream, each awaited. */
async function oneProducer(mode) {
  const t = await freshTables();
  const store = mode.streams(t);
  await store.create("one");
  const start = performance.now();
  for (let i = 0; i < 1000; i++) await store.append("one", `token ${i} `);
  const seconds = (performance.now() - start) / 1000;
  await store.close?.();
  await t.drop();
  return { chunksPerSecond: Math.round(1000 / seconds) };
}

/**
 * stop() in another process → the producer's stopSignal here aborts: 30 streams, one at
 * a time, the stop sent to a child process over a pipe. (The original has no stop signal:
 * its producer hears of a stop at its next append.)
 */
async function stopAcross(mode) {
  if (!mode.stopSignals) return undefined;
  const t = await freshTables();
  const store = mode.streams(t);
  const stopper = spawn(process.execPath, [new URL("./child.mjs", import.meta.url).pathname, "stopper", mode.key, JSON.stringify(t), "-", "0"], {
    env: { ...process.env, DATABASE_URL: url },
    stdio: ["pipe", "pipe", "inherit"],
  });
  await new Promise((resolve) => stopper.stdout.once("data", resolve)); // "ready"
  const lags = [];
  for (let i = 0; i < 30; i++) {
    const id = `stop${i}`;
    await store.create(id);
    const signal = store.stopSignal(id);
    await store.append(id, "token");
    await sleep(50); // the producer waits for its model
    const aborted = new Promise((resolve) => signal.addEventListener("abort", () => resolve(performance.now()), { once: true }));
    const sent = performance.now();
    stopper.stdin.write(`${id}\n`);
    lags.push((await aborted) - sent);
  }
  stopper.stdin.end();
  await new Promise((resolve) => stopper.on("exit", resolve));
  await store.close?.();
  await t.drop();
  return { p50Ms: +median(lags).toFixed(2), p99Ms: +quantile(lags, 0.99).toFixed(2) };
}

/** A writer in another process (its own store, same mode) appends 100 chunks 20 ms
 *  apart, each carrying the wall-clock time it was sent; a live reader here notes the lag. */
async function liveTailAcross(mode) {
  const t = await freshTables();
  const store = mode.streams(t);
  const id = "tail-across";
  await store.create(id);
  const lags = [];
  const reader = (async () => {
    for await (const chunk of store.readFrom(id, 0)) lags.push(wallMs() - Number(chunk.data));
  })();
  await sleep(300); // the reader is waiting (and, with LISTEN, listening)
  await child(["write", mode.key, JSON.stringify(t), id, "100"]);
  await reader;
  if (lags.length !== 100) throw new Error(`the reader got ${lags.length} chunks`);
  await store.close?.();
  await t.drop();
  return { p50Ms: +median(lags).toFixed(2), p99Ms: +quantile(lags, 0.99).toFixed(2) };
}

/** Transactions the server counted in this database (pg_stat_database). */
async function serverStatements() {
  const { rows } = await admin.query("SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()");
  return Number(rows[0].n);
}

// A backend sends its statistics at most once a second, and an idle one within 10 s.
const STATS_SETTLE_MS = 11_000;

/** 50 readers (in a process of their own) waiting on 50 active streams for 5 s:
 *  statements per second, as the server counts them. The window opens once the readers
 *  wait and closes after their process is killed and every backend has reported. */
async function idleLoad(mode) {
  const t = await freshTables();
  const ids = Array.from({ length: 50 }, (_, i) => `idle${i}`);
  await admin.query(`INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) SELECT unnest($1::text[]), 'active', 0, $2`, [ids, Date.now() + 1e8]);
  const readers = spawn(process.execPath, [new URL("./child.mjs", import.meta.url).pathname, "idle", mode.key, JSON.stringify(t), "idle", "50"], {
    env: { ...process.env, DATABASE_URL: url },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise((resolve, reject) => {
    readers.stdout.on("data", (data) => String(data).includes("ready") && resolve());
    readers.on("exit", () => reject(new Error("the idle readers' process ended early")));
  });
  await sleep(STATS_SETTLE_MS);
  const before = await serverStatements();
  await sleep(5_000);
  const gone = new Promise((resolve) => readers.once("exit", resolve));
  readers.kill("SIGKILL");
  await gone;
  await sleep(STATS_SETTLE_MS);
  const after = await serverStatements();
  await t.drop();
  // The reading of `before` is one of the statements counted.
  return { statementsPerSecond: +((after - before - 1) / 5).toFixed(1) };
}

/** Peak resident memory a fresh process gains while it reads a 1,000,000-chunk stream
 *  through (child.mjs). The stream is written once and shared by the modes. */
let bigStream;
async function replayMemory(mode) {
  if (!bigStream) {
    bigStream = await freshTables();
    await admin.query(`INSERT INTO ${bigStream.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ('big', 'done', 1000000, $1)`, [Date.now() + 1e8]);
    await admin.query(`INSERT INTO ${bigStream.stream.chunksTable} (id, seq, data) SELECT 'big', g, 'token number ' || g || ' ' FROM generate_series(1, 1000000) g`);
  }
  const { stdout } = await child(["replay", mode.key, JSON.stringify(bigStream), "big"]);
  const result = JSON.parse(stdout);
  if (result.chunks !== 1_000_000) throw new Error(`replay read ${result.chunks} chunks`);
  return { rssGrowthMb: result.rssGrowthMb };
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

/** Removing 2,000 expired streams of 5 chunks each, 7 times (after one untimed round, so
 *  that prepared statements are warm, as they are in a running app), from tables that
 *  also hold 100 live streams of 1,000 chunks, as a running app's do. (With only the
 *  doomed rows in the table, the original's planner may read the whole chunks table with
 *  a sequential scan, which a real table of any size does not allow.) */
async function cleanup(mode) {
  const t = await freshTables();
  const store = mode.streams(t, { ttlMs: 0 });
  const times = [];
  await admin.query(`INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) SELECT 'live' || g, 'active', 1000, $1 FROM generate_series(1, 100) g`, [Date.now() + 1e9]);
  await admin.query(`INSERT INTO ${t.stream.chunksTable} (id, seq, data) SELECT 'live' || g, s, 'token ' || s FROM generate_series(1, 100) g, generate_series(1, 1000) s`);
  await admin.query(`ANALYZE ${t.stream.statusTable}, ${t.stream.chunksTable}`);
  for (let run = 0; run < 8; run++) {
    await admin.query(`INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) SELECT 'c' || g, 'done', 5, 1 FROM generate_series(1, 2000) g`);
    await admin.query(`INSERT INTO ${t.stream.chunksTable} (id, seq, data) SELECT 'c' || g, s, 'x' FROM generate_series(1, 2000) g, generate_series(1, 5) s`);
    const start = performance.now();
    await store.cleanup();
    if (run > 0) times.push(performance.now() - start);
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${t.stream.chunksTable}`);
    if (rows[0].n !== 100_000) throw new Error(`cleanup left ${rows[0].n - 100_000} chunks, or took live ones`);
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

// [label, measure, show, value, higher is better, rounds]
const figures = [
  ["append throughput (50 streams x 200 appends)", appendThroughput, (r) => `${r.chunksPerSecond} chunks/s`, (r) => r.chunksPerSecond, true, 3],
  ["one producer, 1,000 awaited appends to one stream", oneProducer, (r) => `${r.chunksPerSecond} chunks/s`, (r) => r.chunksPerSecond, true, 3],
  ["live tail, same process", liveTail, (r) => `p50 ${r.p50Ms} / p99 ${r.p99Ms} ms`, (r) => r.p50Ms, false, 3],
  ["live tail, across processes", liveTailAcross, (r) => `p50 ${r.p50Ms} / p99 ${r.p99Ms} ms`, (r) => r.p50Ms, false, 3],
  ["replay 10,000 chunks", replay, (r) => `${r.medianMs} ms`, (r) => r.medianMs, false, 3],
  ["cleanup 2,000 streams", cleanup, (r) => `${r.medianMs} ms`, (r) => r.medianMs, false, 5],
  ["conversation save+load (10 at once)", conversations, (r) => `${r.pairsPerSecond} pairs/s`, (r) => r.pairsPerSecond, true, 5],
  ["replay 1,000,000 chunks: peak RSS growth", replayMemory, (r) => `${r.rssGrowthMb} MB`, (r) => Math.max(r.rssGrowthMb, 0.1), false, 1],
  ["idle load, 50 waiting readers", idleLoad, (r) => `${r.statementsPerSecond} stmt/s`, (r) => Math.max(r.statementsPerSecond, 0.1), false, 1],
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
if (!only) {
  for (const mode of modes) {
    await replay(mode);
    await appendThroughput(mode);
  }
}

// Each figure is measured ROUNDS times per mode, the modes taking turns in a rotating
// order (so no mode always runs right after another warmed the server); the median
// round is reported.
const table = [];
for (const [label, measure, show, value, higherIsBetter, ROUNDS] of figures) {
  if (only && !label.includes(only)) continue;
  const row = { figure: label };
  const rounds = Object.fromEntries(modes.map((m) => [m.key, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < modes.length; i++) {
      const mode = modes[(i + round) % modes.length];
      rounds[mode.key].push(await measure(mode));
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

// stop → abort has no baseline to compare with: measured for the modes that have it.
if (!only || "stop in another process -> stopSignal aborts".includes(only)) {
  const stops = {};
  for (const mode of modes) {
    const rounds = [];
    for (let round = 0; round < 3; round++) {
      const r = await stopAcross(mode);
      if (r) rounds.push(r);
    }
    if (rounds.length) stops[mode.key] = rounds.sort((a, b) => a.p50Ms - b.p50Ms)[1];
  }
  results.figures["stop in another process -> stopSignal aborts"] = stops;
  const row = { figure: "stop in another process -> stopSignal aborts" };
  for (const mode of modes) row[mode.key] = stops[mode.key] ? `p50 ${stops[mode.key].p50Ms} / p99 ${stops[mode.key].p99Ms} ms` : "(none: at its next append)";
  table.push(row);
  console.error("measured: stop signal");
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

await bigStream?.drop();
await endModes();
await admin.end();
