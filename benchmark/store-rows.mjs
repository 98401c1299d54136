// The rows of the store's own work: appends, one producer, idle load, replay, cleanup,
// conversations.
import { admin, child, countedPlace, freshTables, median, sleep, nextStream, url } from "./context.mjs";

/** 50 streams, each appending 200 chunks one after another; all streams at once. */
export async function appendThroughput(mode) {
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

/** One producer, as DurableStream does: 1,000 appends to one stream, each awaited. */
export async function oneProducer(mode) {
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

/** Transactions the server counted in this database (pg_stat_database). */
export async function serverStatements() {
  const { rows } = await admin.query(
    "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()",
  );
  return Number(rows[0].n);
}

// A backend sends its statistics at most once a second, and an idle one within 10 s.
export const STATS_SETTLE_MS = 11_000;
export const IDLE_MS = 10_000;

/** 50 readers (in a process of their own) waiting on 50 active streams: statements per
 *  second, as the server counts them, in the counted database (counted.mjs), where no
 *  one else's work is counted: (a run that waits IDLE_MS, less one that is killed as soon
 *  as its readers wait) / IDLE_MS. Each run's window opens before the process starts and
 *  closes once its backends are gone, so the two differ only by the wait. */
export async function idleLoad(mode) {
  const place = await countedPlace();
  if (place.url === url) {
    await place.done();
    return idleLoadShared(mode);
  }
  const run = async (waitMs) => {
    const prefix = `idle-${nextStream()}-`;
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
export async function idleLoadShared(mode) {
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
export let bigStream;
export async function replayMemory(mode) {
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
export async function replay(mode) {
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
export async function cleanup(mode) {
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
export async function conversations(mode) {
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
