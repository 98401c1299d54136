// `npm run bench`: this package (Rust pool, and over a pg.Pool) against the original's
// algorithm over pg (benchmark/baseline.mjs), in one run against one PostgreSQL. Prints a
// table and writes benchmark/results.json. Child processes (benchmark/child.mjs) play the
// other processes: writers and readers across processes, the fan-out's readers, the
// producers whose database transactions are counted, the replay whose memory is measured.
// When Redis answers (REDIS_URL, default redis://127.0.0.1:6379), Vercel's
// resumable-stream runs the same live workloads (benchmark/resumable-stream.mjs) and a
// second table compares it.
//
//   BENCH_ONLY=<part of a figure's label> node benchmark/bench.mjs   runs just those rows
import { writeFileSync } from "node:fs";
import os from "node:os";
import pg from "pg";
import { counted, makeCountedDb } from "./counted.mjs";
import { makeModes } from "./modes.mjs";
import { allResults, killAll, startChild } from "./procs.mjs";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is not set: run `npm run bench`");

const only = process.env.BENCH_ONLY; // a substring of figure labels: run just those
const admin = new pg.Pool({ connectionString: url, max: 2 });
const { modes, end: endModes } = makeModes(url);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const median = (values) => quantile(values, 0.5);
const round2 = (x) => +x.toFixed(2);
const childScript = new URL("./child.mjs", import.meta.url).pathname;
/**
 * A child.mjs process (see procs.mjs: a deadline, killed if the benchmark ends).
 * @param {string[]} args
 * @param {{ db?: string, timeoutMs?: number, node?: string[] }} [options]
 */
const child = (args, { db = url, timeoutMs = 120_000, node = [] } = {}) =>
  startChild(childScript, args, { env: { ...process.env, DATABASE_URL: db }, timeoutMs, node });
/** `promise`, or a rejection if it has not settled within `ms`. */
function within(ms, what, promise) {
  let timer;
  const late = new Promise(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not come within ${ms} ms`)), ms)),
  );
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
/** Kills the children if `promise` rejects (one of them failed), and rethrows. */
async function guard(children, promise) {
  try {
    return await promise;
  } catch (err) {
    for (const c of children) c.kill();
    throw err;
  }
}

/** What went wrong in deliveries (missing, repeated, out of order): printed at the end,
 *  and the benchmark then exits with 1. */
const problems = [];
function noteProblems(what, mode, found) {
  if (found.length)
    problems.push(`${what} [${mode.key}]: ${found.length} problem(s), e.g. ${found.slice(0, 3).join("; ")}`);
}

const liveSchemas = new Set(); // dropped at the end if a failure left them
let schemas = 0;
/** The original package's tables, exactly as its README has apps create them (no index),
 *  for every mode: what an app that swaps the import has; the fair ground for the
 *  comparison. (`migrate()` adds indexes on `expires_at` that keep `cleanup` fast.) */
async function freshTables() {
  const schema = `bench_${process.pid}_${schemas++}`;
  liveSchemas.add(schema);
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.aibind_stream_chunks (id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (id, seq));
    CREATE TABLE ${schema}.aibind_stream_status (id TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'active', error TEXT,
      total_chunks INTEGER NOT NULL DEFAULT 0, expires_at BIGINT NOT NULL);
    CREATE TABLE ${schema}.aibind_conversations (session_id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL);`);
  return {
    schema,
    stream: { chunksTable: `${schema}.aibind_stream_chunks`, statusTable: `${schema}.aibind_stream_status` },
    conversation: { table: `${schema}.aibind_conversations` },
    drop: async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      liveSchemas.delete(schema);
    },
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
  const stopper = child(["stopper", mode.key, JSON.stringify(t), "-", "0"]);
  const ended = stopper.result().then(() => {
    throw new Error("the stopper process ended early");
  });
  ended.catch(() => {});
  await guard([stopper], Promise.race([stopper.waitFor("ready"), ended]));
  const lags = [];
  for (let i = 0; i < 30; i++) {
    const id = `stop${i}`;
    await store.create(id);
    const signal = store.stopSignal(id);
    await store.append(id, "token");
    await sleep(50); // the producer waits for its model
    const aborted = new Promise((resolve) =>
      signal.addEventListener("abort", () => resolve(performance.now()), { once: true }),
    );
    const sent = performance.now();
    stopper.send(id);
    lags.push((await guard([stopper], within(10_000, `stop ${id}: the abort`, Promise.race([aborted, ended])))) - sent);
  }
  stopper.proc.stdin.end();
  await stopper.result();
  await store.close?.();
  await t.drop();
  return { p50Ms: +median(lags).toFixed(2), p99Ms: +quantile(lags, 0.99).toFixed(2) };
}

/** A writer in another process (its own store, same mode) appends 100 chunks 20 ms
 *  apart, each carrying the wall-clock time it was sent; a live reader in a third process
 *  (same mode) notes the lag. Both are child processes that run only their mode, so a JS
 *  client's reader is not woken by the Rust pool (and its LISTEN connection) that the
 *  benchmark's own process keeps for the native mode: in-process wake-ups reach every
 *  store of a process, whatever its backend. */
async function liveTailAcross(mode) {
  const t = await freshTables();
  const id = "tail-across";
  await admin.query(
    `INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ($1, 'active', 0, $2)`,
    [id, Date.now() + 1e8],
  );
  const reader = child(["tail", mode.key, JSON.stringify(t), id, "100"]);
  await guard([reader], reader.waitFor("ready")); // the reader is waiting (and, with LISTEN, listening)
  const writer = child(["write", mode.key, JSON.stringify(t), id, "100"]);
  const [, read] = await allResults([writer, reader]);
  noteProblems("live tail, across processes", mode, read.problems);
  if (read.delivered !== 100) throw new Error(`the reader got ${read.delivered} chunks`);
  await t.drop();
  return { p50Ms: round2(median(read.lags)), p99Ms: round2(quantile(read.lags, 0.99)) };
}

/** Transactions the server counted in this database (pg_stat_database). */
async function serverStatements() {
  const { rows } = await admin.query(
    "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()",
  );
  return Number(rows[0].n);
}

// A backend sends its statistics at most once a second, and an idle one within 10 s.
const STATS_SETTLE_MS = 11_000;
const IDLE_MS = 10_000;

/** 50 readers (in a process of their own) waiting on 50 active streams: statements per
 *  second, as the server counts them, in the counted database (counted.mjs), where no
 *  one else's work is counted: (a run that waits IDLE_MS, less one that is killed as soon
 *  as its readers wait) / IDLE_MS. Each run's window opens before the process starts and
 *  closes once its backends are gone, so the two differ only by the wait. */
async function idleLoad(mode) {
  const place = await countedPlace();
  if (place.url === url) {
    await place.done();
    return idleLoadShared(mode);
  }
  const run = async (waitMs) => {
    const prefix = `idle-${streamsMade++}-`;
    const ids = Array.from({ length: 50 }, (_, i) => `${prefix}${i}`);
    await place.run(
      `INSERT INTO ${place.tables.stream.statusTable} (id, state, total_chunks, expires_at) SELECT unnest($1::text[]), 'active', 0, $2`,
      [ids, Date.now() + 1e8],
    );
    const { transactions } = await place.count(async () => {
      const readers = child(["idle", mode.key, JSON.stringify(place.tables), prefix, "50"], {
        db: place.url,
        timeoutMs: 60_000,
      });
      await readers.waitFor("ready");
      await sleep(waitMs);
      if (readers.proc.exitCode !== null) throw new Error("the idle readers' process ended early");
      readers.kill();
      await readers.result().catch(() => {}); // killed: it has exited
    });
    return /** @type {number} */ (transactions); // counted: this place is not the shared one (above)
  };
  const waited = await run(IDLE_MS);
  const notWaited = await run(0);
  return { statementsPerSecond: +((waited - notWaited) / (IDLE_MS / 1000)).toFixed(1) };
}

/** idleLoad where no database can be made for counting: in the benchmark's database, whose
 *  count also takes in whatever else uses it meanwhile. The window opens once the readers
 *  wait and closes after their process is killed and every backend has reported. */
async function idleLoadShared(mode) {
  const t = await freshTables();
  const ids = Array.from({ length: 50 }, (_, i) => `idle${i}`);
  await admin.query(
    `INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) SELECT unnest($1::text[]), 'active', 0, $2`,
    [ids, Date.now() + 1e8],
  );
  const readers = child(["idle", mode.key, JSON.stringify(t), "idle", "50"], { timeoutMs: 60_000 });
  await readers.waitFor("ready");
  await sleep(STATS_SETTLE_MS);
  const before = await serverStatements();
  await sleep(5_000);
  if (readers.proc.exitCode !== null) throw new Error("the idle readers' process ended early");
  readers.kill();
  await readers.result().catch(() => {}); // killed: it has exited
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
    await admin.query(
      `INSERT INTO ${bigStream.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ('big', 'done', 1000000, $1)`,
      [Date.now() + 1e8],
    );
    await admin.query(
      `INSERT INTO ${bigStream.stream.chunksTable} (id, seq, data) SELECT 'big', g, 'token number ' || g || ' ' FROM generate_series(1, 1000000) g`,
    );
  }
  const result = await child(["replay", mode.key, JSON.stringify(bigStream), "big"], {
    node: ["--expose-gc"],
    timeoutMs: 600_000,
  }).result();
  if (result.chunks !== 1_000_000) throw new Error(`replay read ${result.chunks} chunks`);
  return { rssGrowthMb: result.rssGrowthMb };
}

/** Reading back a finished 10,000-chunk stream from the start. */
async function replay(mode) {
  const t = await freshTables();
  const store = mode.streams(t);
  await admin.query(
    `INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ('r', 'done', 10000, $1)`,
    [Date.now() + 1e6],
  );
  await admin.query(
    `INSERT INTO ${t.stream.chunksTable} (id, seq, data) SELECT 'r', g, 'token number ' || g || ' ' FROM generate_series(1, 10000) g`,
  );
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
  await admin.query(
    `INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) SELECT 'live' || g, 'active', 1000, $1 FROM generate_series(1, 100) g`,
    [Date.now() + 1e9],
  );
  await admin.query(
    `INSERT INTO ${t.stream.chunksTable} (id, seq, data) SELECT 'live' || g, s, 'token ' || s FROM generate_series(1, 100) g, generate_series(1, 1000) s`,
  );
  await admin.query(`ANALYZE ${t.stream.statusTable}, ${t.stream.chunksTable}`);
  for (let run = 0; run < 8; run++) {
    await admin.query(
      `INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) SELECT 'c' || g, 'done', 5, 1 FROM generate_series(1, 2000) g`,
    );
    await admin.query(
      `INSERT INTO ${t.stream.chunksTable} (id, seq, data) SELECT 'c' || g, s, 'x' FROM generate_series(1, 2000) g, generate_series(1, 5) s`,
    );
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
  const json = JSON.stringify({
    messages: Array.from({ length: 20 }, (_, i) => ({
      role: i % 2 ? "assistant" : "user",
      content: "lorem ipsum ".repeat(20),
    })),
  });
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

// ------------------------------------------------------------------ issue 10: readers
// The rows below ask what readers cost the database, and how a live stream fares with
// many readers, many streams or a fast producer. Where the database's transactions are
// counted, the workload runs in child processes on a database of its own (counted.mjs):
// the server's own count, read when every backend of that database has exited and so
// reported it, not the stores' counts of their statements.

let countedDbMade;
/** Where a counted workload runs: the counted database, or, if this user cannot create a
 *  database, fresh tables in the benchmark's own (and the counts are null). */
async function countedPlace() {
  const db = await (countedDbMade ??= makeCountedDb(admin, url));
  if (db)
    return {
      url: db.url,
      tables: db.tables,
      run: (sql, params) => db.run(sql, params),
      count: (work) => counted(db, work),
      done: async () => {},
    };
  const t = await freshTables();
  const count = async (work) => ({ result: await work(), transactions: null });
  return { url, tables: t, run: (sql, params) => admin.query(sql, params), count, done: t.drop };
}
let streamsMade = 0;
/** A new active stream's id (unique across the run: the counted tables are kept). */
async function activeStream(place, prefix) {
  const id = `${prefix}-${streamsMade++}`;
  await place.run(
    `INSERT INTO ${place.tables.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ($1, 'active', 0, $2)`,
    [id, Date.now() + 1e8],
  );
  return id;
}
const perChunk = (transactions, chunks) => (transactions === null ? null : +(transactions / chunks).toFixed(2));

const FAN = { processes: 2, readersEach: 50, chunks: 200 };
const FAN_READERS = FAN.processes * FAN.readersEach;

/** One fan-out run: `readers` ? FAN.processes child processes of FAN.readersEach live
 *  readers each : none; then a writer process appends `chunks` chunks 20 ms apart (each
 *  carrying its wall-clock send time) and completes the stream. Resolves the readers'
 *  results and the transactions counted from before the first child started to after the
 *  last one's backends were gone. */
async function fanOutRun(mode, place, { readers, chunks }) {
  const id = await activeStream(place, `fan-${mode.key}`);
  const tables = JSON.stringify(place.tables);
  return place.count(async () => {
    const tails = Array.from({ length: readers ? FAN.processes : 0 }, () =>
      child(["tail", mode.key, tables, id, String(chunks), String(FAN.readersEach)], { db: place.url }),
    );
    await guard(tails, Promise.all(tails.map((c) => c.waitFor("ready"))));
    const writer = child(["write", mode.key, tables, id, String(chunks)], { db: place.url });
    const [, ...results] = await allResults([writer, ...tails]);
    return results;
  });
}

/**
 * Fan-out: FAN_READERS live readers of ONE stream, in FAN.processes processes, while a
 * writer in a third process appends FAN.chunks chunks 20 ms apart and completes it.
 * Lag: from the writer's send (wall clock, in the chunk) to each reader's receipt, over
 * every reader's every chunk. Each reader must see seqs 1..N in order, once each.
 *
 * The readers' database transactions are measured as the server counts them, in the
 * counted database (counted.mjs), by difference:
 *   A = writer + readers,  B = the same writer alone,  C = readers of a stream that gets
 *   no chunk (started, waiting, then the stream completes),  D = that writer alone;
 *   readers' transactions per chunk = (A - B) / N: everything the readers cost, their
 *   start (connections, first read, LISTEN) included;
 *   of which their start, per reader = (C - D) / readers, and the rest, per chunk =
 *   ((A - B) - (C - D)) / N: what following the stream cost beyond that.
 * All four runs go through the same child processes and statements, so what the writer,
 * the processes' start and the count itself cost cancels out. A noisy run can make a
 * difference a few transactions off (never the order of magnitude). A reader process's
 * LISTEN connection counts one transaction each time it takes in a notification (see
 * counted.mjs): part of the readers' share. (To see which statements make a count, set
 * log_statement = 'all' on the counted database and read the server's log.)
 */
async function fanOut(mode) {
  const place = await countedPlace();
  const a = await fanOutRun(mode, place, { readers: true, chunks: FAN.chunks });
  const b = await fanOutRun(mode, place, { readers: false, chunks: FAN.chunks });
  const c = await fanOutRun(mode, place, { readers: true, chunks: 0 });
  const d = await fanOutRun(mode, place, { readers: false, chunks: 0 });
  await place.done();
  const lags = a.result.flatMap((r) => r.lags);
  const found = [...a.result, ...c.result].flatMap((r) => r.problems);
  noteProblems("fan-out", mode, found);
  const counts = a.transactions !== null;
  const readers = counts ? a.transactions - b.transactions : null;
  const start = counts ? c.transactions - d.transactions : null;
  return {
    p50Ms: round2(median(lags)),
    p99Ms: round2(quantile(lags, 0.99)),
    delivered: a.result.reduce((n, r) => n + r.delivered, 0),
    expected: FAN_READERS * FAN.chunks,
    problems: found.length,
    readersTransactionsPerChunk: perChunk(readers, FAN.chunks),
    // prettier-ignore
    readersStartTransactionsPerReader: counts ? +(/** @type {number} */ (start) / FAN_READERS).toFixed(2) : null,
    readersFollowTransactionsPerChunk: perChunk(
      counts ? /** @type {number} */ (readers) - /** @type {number} */ (start) : null,
      FAN.chunks,
    ),
    allTransactionsPerChunk: perChunk(a.transactions, FAN.chunks),
    writerTransactionsPerChunk: perChunk(b.transactions, FAN.chunks),
    transactions: {
      withReaders: a.transactions,
      writerAlone: b.transactions,
      readersNoChunks: c.transactions,
      writerNoChunks: d.transactions,
    },
  };
}

/** 20 streams written at once, in this process: a writer per stream appends 100 chunks
 *  20 ms apart, all concurrently; one live reader per stream, here too. */
async function liveTailMany(mode) {
  const t = await freshTables();
  const store = mode.streams(t);
  const ids = Array.from({ length: 20 }, (_, i) => `many${i}`);
  for (const id of ids) await store.create(id);
  /** @type {Map<string, number[]>} */
  const sentAt = new Map(ids.map((id) => [id, []]));
  const lags = [];
  const found = [];
  const readers = ids.map(async (id) => {
    let next = 1;
    for await (const chunk of store.readFrom(id, 0)) {
      lags.push(performance.now() - /** @type {number[]} */ (sentAt.get(id))[chunk.seq]);
      if (chunk.seq !== next) found.push(`${id}: got seq ${chunk.seq} where ${next} was due`);
      next = chunk.seq + 1;
    }
    if (next !== 101) found.push(`${id}: ended after seq ${next - 1} of 100`);
  });
  await sleep(300); // the readers are waiting
  await Promise.all(
    ids.map(async (id) => {
      for (let i = 1; i <= 100; i++) {
        /** @type {number[]} */ (sentAt.get(id))[i] = performance.now();
        await store.append(id, `token ${i} `);
        await sleep(20);
      }
      await store.complete(id);
    }),
  );
  await Promise.all(readers);
  noteProblems("live tail, 20 streams", mode, found);
  await store.close?.();
  await t.drop();
  return { p50Ms: round2(median(lags)), p99Ms: round2(quantile(lags, 0.99)), delivered: lags.length };
}

/** Whether the mode's store takes these options: unknown options are ignored (as by the
 *  original), so an option counts as taken only if a value of the wrong type is refused
 *  and the given value is not (INVALID_OPTION). The baseline is given relaxed durability
 *  by its pool (modes.mjs). */
async function takesOptions(mode, options) {
  if (mode.key === "baseline") return true;
  const tables = { stream: { chunksTable: "probe_chunks", statusTable: "probe_status" } };
  const wrongType = Object.fromEntries(
    Object.entries(options).map(([k, v]) => [k, typeof v === "string" ? 0 : "not a boolean"]),
  );
  try {
    await mode.streams(tables, wrongType).close?.();
    return false; // not known: ignored
  } catch {}
  try {
    await mode.streams(tables, options).close?.();
    return true;
  } catch (err) {
    if (err.code === "INVALID_OPTION") return false;
    throw err;
  }
}

const PRODUCED = 1000;
/**
 * One producer, as DurableStream does, with one live reader in its process (child.mjs
 * produce): PRODUCED appends to one stream, each awaited; chunks/s over the appends, and
 * every database transaction of that process per chunk, as the server counts them (the
 * process's connections, create, the reader's reads, NOTIFYs, complete included).
 */
function oneProducerWithReader(options) {
  return async (mode) => {
    if (options && !(await takesOptions(mode, options))) return { unsupported: "option not taken" };
    const place = await countedPlace();
    const id = `prod-${mode.key}-${streamsMade++}`; // the child creates it
    const args = [
      "produce",
      mode.key,
      JSON.stringify(place.tables),
      id,
      String(PRODUCED),
      ...(options ? [JSON.stringify(options)] : []),
    ];
    const { result, transactions } = await place.count(() => child(args, { db: place.url }).result());
    await place.done();
    if (result.unsupported) return result;
    noteProblems("one producer + reader", mode, result.problems);
    return {
      chunksPerSecond: result.chunksPerSecond,
      delivered: result.delivered,
      transactionsPerChunk: perChunk(transactions, PRODUCED),
      transactions,
    };
  };
}

const lag = (r) => `p50 ${r.p50Ms} / p99 ${r.p99Ms} ms`;
const FAN_LABEL = `fan-out: ${FAN_READERS} readers of one stream in ${FAN.processes} processes, ${FAN.chunks} chunks 20 ms apart: lag`;
const FAN_DELIVERED = "fan-out: chunks delivered, each reader all in order";
const FAN_READERS_XACT = "fan-out: readers' database transactions per chunk";
const FAN_ALL_XACT = "fan-out: all database transactions per chunk (writer + readers)";
const PRODUCER_LABEL = `one producer + one live reader (same process), ${PRODUCED.toLocaleString("en")} awaited appends`;
const PRODUCER_XACT = `${PRODUCER_LABEL}: database transactions per chunk`;

/**
 * @typedef {ReturnType<typeof makeModes>["modes"][number]} Mode
 * @typedef {Record<string, any>} Result what a measure resolves for a mode (one round)
 * @typedef {{ label: string, show: (r: Result) => string, value: (r: Result) => any, higherIsBetter: boolean, worst?: boolean, noRatio?: boolean }} Metric
 */

// [label, measure, show, value, higher is better, rounds, more rows from the same rounds]
// A further row is { label, show, value, higherIsBetter, worst }: it shows the median
// round by its own value (the worst round if `worst`); a null value has no ratio.
/** @type {[label: string, measure: (mode: Mode) => Promise<Result>, show: Metric["show"], value: Metric["value"], higherIsBetter: boolean, rounds: number, more?: Metric[]][]} */
const figures = [
  [
    "append throughput (50 streams x 200 appends)",
    appendThroughput,
    (r) => `${r.chunksPerSecond} chunks/s`,
    (r) => r.chunksPerSecond,
    true,
    3,
  ],
  [
    "one producer, 1,000 awaited appends to one stream",
    oneProducer,
    (r) => `${r.chunksPerSecond} chunks/s`,
    (r) => r.chunksPerSecond,
    true,
    3,
  ],
  ["live tail, same process", liveTail, lag, (r) => r.p50Ms, false, 3],
  ["live tail, across processes", liveTailAcross, lag, (r) => r.p50Ms, false, 3],
  ["live tail, same process, 20 streams written at once", liveTailMany, lag, (r) => r.p50Ms, false, 3],
  [
    FAN_LABEL,
    fanOut,
    lag,
    (r) => r.p50Ms,
    false,
    3,
    [
      {
        label: FAN_DELIVERED,
        show: (r) => `${r.delivered}/${r.expected}`,
        value: (r) => r.delivered,
        higherIsBetter: true,
        worst: true,
        noRatio: true,
      },
      {
        label: FAN_READERS_XACT,
        show: (r) =>
          r.readersTransactionsPerChunk === null
            ? "n/a (not counted)"
            : `${r.readersTransactionsPerChunk} (start ${r.readersStartTransactionsPerReader}/reader, then ${r.readersFollowTransactionsPerChunk}/chunk)`,
        value: (r) => r.readersTransactionsPerChunk,
        higherIsBetter: false,
      },
      {
        label: FAN_ALL_XACT,
        show: (r) => (r.allTransactionsPerChunk === null ? "n/a (not counted)" : `${r.allTransactionsPerChunk}`),
        value: (r) => r.allTransactionsPerChunk,
        higherIsBetter: false,
      },
    ],
  ],
  [
    PRODUCER_LABEL,
    oneProducerWithReader(),
    (r) => `${r.chunksPerSecond} chunks/s`,
    (r) => r.chunksPerSecond,
    true,
    3,
    [
      {
        label: PRODUCER_XACT,
        show: (r) => `${r.transactionsPerChunk ?? "n/a (not counted)"}`,
        value: (r) => r.transactionsPerChunk,
        higherIsBetter: false,
      },
    ],
  ],
  [
    `${PRODUCER_LABEL}, synchronousCommit: false`,
    oneProducerWithReader({ synchronousCommit: false }),
    (r) => `${r.chunksPerSecond} chunks/s`,
    (r) => r.chunksPerSecond,
    true,
    3,
    [
      {
        label: `${PRODUCER_LABEL}, synchronousCommit: false: database transactions per chunk`,
        show: (r) => `${r.transactionsPerChunk ?? "n/a (not counted)"}`,
        value: (r) => r.transactionsPerChunk,
        higherIsBetter: false,
      },
    ],
  ],
  ["replay 10,000 chunks", replay, (r) => `${r.medianMs} ms`, (r) => r.medianMs, false, 3],
  ["cleanup 2,000 streams", cleanup, (r) => `${r.medianMs} ms`, (r) => r.medianMs, false, 5],
  [
    "conversation save+load (10 at once)",
    conversations,
    (r) => `${r.pairsPerSecond} pairs/s`,
    (r) => r.pairsPerSecond,
    true,
    5,
  ],
  [
    "replay 1,000,000 chunks: peak RSS growth",
    replayMemory,
    (r) => `${r.rssGrowthMb} MB`,
    (r) => Math.max(r.rssGrowthMb, 0.1),
    false,
    1,
  ],
  [
    "idle load, 50 waiting readers",
    idleLoad,
    (r) => `${r.statementsPerSecond} stmt/s`,
    (r) => Math.max(r.statementsPerSecond, 0.1),
    false,
    1,
  ],
];

const RS_LABEL = "resumable-stream (Redis pub/sub)";
const selected = (label) => !only || label.includes(only);

async function main() {
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
  for (const [label, measure, show, value, higherIsBetter, ROUNDS, more = []] of figures) {
    const metrics = [{ label, show, value, higherIsBetter }, ...more];
    if (!metrics.some((m) => selected(m.label))) continue;
    /** @type {Record<string, Result[]>} */
    const rounds = Object.fromEntries(modes.map((m) => [m.key, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < modes.length; i++) {
        const mode = modes[(i + round) % modes.length];
        rounds[mode.key].push(await measure(mode));
      }
    }
    for (const metric of metrics) {
      const valueOf = (r) => (r.unsupported ? null : metric.value(r));
      const measured = {};
      for (const mode of modes) {
        const known = rounds[mode.key].filter((r) => valueOf(r) !== null && valueOf(r) !== undefined);
        if (!known.length) {
          measured[mode.key] = rounds[mode.key][0];
          continue;
        }
        const sorted = known.sort((a, b) => valueOf(a) - valueOf(b));
        const worst = metric.higherIsBetter ? sorted[0] : sorted[sorted.length - 1];
        measured[mode.key] = metric.worst ? worst : sorted[Math.floor(sorted.length / 2)];
      }
      const row = { figure: metric.label };
      const base = valueOf(measured.baseline);
      for (const mode of modes) {
        const r = measured[mode.key];
        const v = valueOf(r);
        let cell = r.unsupported ? `n/a (${r.unsupported})` : metric.show(r);
        if (mode.key !== "baseline" && !metric.noRatio && v > 0 && base > 0) {
          cell += ` (${(metric.higherIsBetter ? v / base : base / v).toFixed(2)}x)`;
        }
        row[mode.key] = cell;
      }
      results.figures[metric.label] = measured;
      table.push(row);
    }
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
    for (const mode of modes)
      row[mode.key] = stops[mode.key]
        ? `p50 ${stops[mode.key].p50Ms} / p99 ${stops[mode.key].p99Ms} ms`
        : "(none: at its next append)";
    table.push(row);
    console.error("measured: stop signal");
  }

  // Vercel's resumable-stream on the same live workloads, when Redis answers.
  let rs;
  if (
    selected(RS_LABEL) ||
    (only && [FAN_LABEL, PRODUCER_LABEL, "live tail, across processes"].some((l) => l.includes(only)))
  ) {
    const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
    const module = await import("./resumable-stream.mjs").catch((err) => err);
    const why = module instanceof Error ? `cannot load it: ${module.message}` : await module.redisAnswers(redisUrl);
    if (why === true) {
      rs = await module.measureResumableStream({ redisUrl, fan: FAN, produced: PRODUCED, rounds: 3 });
      results.resumableStream = rs;
      if (rs.problems.length)
        problems.push(`${RS_LABEL}: ${rs.problems.length} problem(s), e.g. ${rs.problems.slice(0, 3).join("; ")}`);
      console.error(`measured: ${RS_LABEL}`);
    } else {
      console.error(`${RS_LABEL}: not measured (${why})`);
    }
  }

  console.log(`\n${results.machine}; Node ${results.node}; PostgreSQL ${results.postgres}`);
  console.log("ratios: how many times better than the baseline (higher is better)\n");
  const headers = ["figure", ...modes.map((m) => m.key)];
  const titles = ["figure", ...modes.map((m) => m.name)];
  printTable(titles, headers, table);

  if (rs) {
    // Each row beside this package's figure for the same workload (when measured in this run).
    const ours = (label, show) =>
      Object.fromEntries(
        modes.map((m) => {
          const r = results.figures[label]?.[m.key];
          return [m.key, r && !r.unsupported ? show(r) : "-"];
        }),
      );
    const f = rs.figures;
    const rsTable = [
      { figure: "live tail, across processes", rs: lag(f.crossTail), ...ours("live tail, across processes", lag) },
      { figure: FAN_LABEL, rs: lag(f.fanOut), ...ours(FAN_LABEL, lag) },
      {
        figure: FAN_DELIVERED,
        rs: `${f.fanOut.delivered}/${f.fanOut.expected}`,
        ...ours(FAN_DELIVERED, (r) => `${r.delivered}/${r.expected}`),
      },
      {
        figure: "fan-out: server operations per chunk, all (Redis commands; PG transactions)",
        rs: `${f.fanOut.redisCommandsPerChunk}`,
        ...ours(FAN_ALL_XACT, (r) => `${r.allTransactionsPerChunk ?? "n/a"}`),
      },
      {
        figure: `one producer + one live reader (same process), ${PRODUCED.toLocaleString("en")} chunks: chunks/s`,
        rs: `${f.oneProducer.chunksPerSecond} chunks/s`,
        ...ours(PRODUCER_LABEL, (r) => `${r.chunksPerSecond} chunks/s`),
      },
      {
        figure: "one producer + one live reader: server operations per chunk (as above)",
        rs: `${f.oneProducer.redisCommandsPerChunk}`,
        ...ours(PRODUCER_XACT, (r) => `${r.transactionsPerChunk ?? "n/a"}`),
      },
    ];
    console.log(
      `\n${RS_LABEL} ${rs.version} on Redis ${rs.redis}, the same workloads (median of ${rs.rounds} rounds). It keeps a`,
    );
    console.log("stream in its producer's memory (nothing durable; gone if that process dies) and sends each");
    console.log("chunk to each reader with a PUBLISH of its own; readers cannot start from a seq.\n");
    printTable(
      ["figure", `resumable-stream ${rs.version}`, ...modes.map((m) => m.name)],
      ["figure", "rs", ...modes.map((m) => m.key)],
      rsTable,
    );
  }

  writeFileSync(new URL("./results.json", import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
  console.log("\nwritten: benchmark/results.json");
  if (problems.length) {
    console.error(`\nDELIVERY PROBLEMS (chunks missing, repeated or out of order):\n${problems.join("\n")}`);
    process.exitCode = 1;
  }
}

function printTable(titles, headers, rows) {
  const widths = headers.map((h, i) => Math.max(titles[i].length, ...rows.map((r) => String(r[h]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(" | ")} |`;
  console.log(line(titles));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of rows) console.log(line(headers.map((h) => row[h])));
}

/** Whatever a run leaves: children, schemas, the counted database, pools. */
let cleaningUp;
function cleanUp() {
  return (cleaningUp ??= (async () => {
    killAll();
    for (const schema of liveSchemas)
      await admin
        .query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
        .catch((err) => console.error(`could not drop ${schema}: ${err.message}`));
    const db = await countedDbMade?.catch(() => null);
    await db?.drop().catch((err) => console.error(`could not drop database ${db.name}: ${err.message}`));
    await endModes().catch(() => {});
    await admin.end().catch(() => {});
  })());
}
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    cleanUp().finally(() => process.exit(130));
  });
}

try {
  await main();
} finally {
  await cleanUp();
}
