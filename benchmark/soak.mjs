// `npm run bench:soak`: no leaks, no hangs. Per mode (Rust pool, pg.Pool): 100,000 appends
// over 100 streams and 10,000 readers (opened and broken off early, read to the end, or
// left waiting until their stream completes), after a warm-up round of the same; prints
// memory before and after (both after full GCs) and fails if it grew past the bound (a
// leak of even 200 bytes per append or 2 KB per reader would). Needs --expose-gc.
import pg from "pg";
import { PostgresStreamStore, migrate } from "../index.js";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is not set: run `npm run bench:soak`");
if (typeof global.gc !== "function") throw new Error("run with node --expose-gc");

const BOUND_MB = { rss: 20, heap: 8 };
const admin = new pg.Pool({ connectionString: url, max: 2 });
const schema = `soak_${process.pid}`;
const tables = { chunksTable: `${schema}.aibind_stream_chunks`, statusTable: `${schema}.aibind_stream_status` };
await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
await migrate(url, { ...tables, conversationsTable: `${schema}.aibind_conversations` });

async function settled() {
  for (let i = 0; i < 4; i++) {
    /** @type {() => void} */ (global.gc)();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const m = process.memoryUsage();
  return { rss: m.rss / 2 ** 20, heap: m.heapUsed / 2 ** 20, external: m.external / 2 ** 20 };
}

/** `appends` appends over `streams` streams (50 at a time) and `readers` readers. */
async function workload(store, tag, streams, appendsEach, readers) {
  const ids = Array.from({ length: streams }, (_, i) => `${tag}-${i}`);
  let readersOpened = 0;
  for (let batch = 0; batch < ids.length; batch += 50) {
    const group = ids.slice(batch, batch + 50);
    await Promise.all(group.map((id) => store.create(id)));
    // Readers left waiting on the active streams: they end when the stream completes.
    const waiting = group.map(async (id) => {
      let n = 0;
      for await (const _ of store.readFrom(id, 0)) n++;
      return n;
    });
    readersOpened += group.length;
    await Promise.all(
      group.map(async (id) => {
        for (let i = 0; i < appendsEach; i++) await store.append(id, `token ${i} of ${id} `);
        await store.complete(id);
      }),
    );
    const counts = await Promise.all(waiting);
    if (counts.some((n) => n !== appendsEach)) throw new Error(`a waiting reader missed chunks: ${counts}`);
  }
  // The rest of the readers on the finished streams: half broken off after a few chunks,
  // half read to the end.
  const perStream = Math.ceil((readers - readersOpened) / streams);
  for (const id of ids) {
    await Promise.all(
      Array.from({ length: perStream }, async (_, r) => {
        let n = 0;
        for await (const chunk of store.readFrom(id, r % 7)) {
          n++;
          if (r % 2 === 0 && n === 3) break; // broken off early
          if (chunk.seq > appendsEach) throw new Error("seq past the end");
        }
        if (r % 2 === 1 && n !== appendsEach - (r % 7)) throw new Error(`a reader got ${n} chunks`);
      }),
    );
    readersOpened += perStream;
  }
  return readersOpened;
}

const pool = new pg.Pool({ connectionString: url, max: 10 });
/** @type {[string, () => PostgresStreamStore][]} */
const modes = [
  ["rust pool (connection string)", () => new PostgresStreamStore(url, tables)],
  ["JS client (pg.Pool)", () => new PostgresStreamStore(pool, tables)],
];
let failed = false;
for (const [name, make] of modes) {
  const store = make();
  // Warm-up, the same work once: pools, prepared statements, JIT, and the allocator's
  // arenas grow to their working size (RSS then stays flat, round after round).
  await workload(store, `${name.slice(0, 2)}-warm`, 100, 1000, 10_000);
  const before = await settled();
  const started = performance.now();
  const readers = await workload(store, `${name.slice(0, 2)}-soak`, 100, 1000, 10_000);
  const seconds = (performance.now() - started) / 1000;
  const after = await settled();
  await store.close();
  const grew = { rss: after.rss - before.rss, heap: after.heap - before.heap };
  const ok = grew.rss <= BOUND_MB.rss && grew.heap <= BOUND_MB.heap;
  failed ||= !ok;
  const mb = (v) => `${v.toFixed(1)} MB`;
  console.log(`${name}: 100,000 appends and ${readers.toLocaleString("en")} readers in ${seconds.toFixed(1)} s`);
  console.log(`  before: rss ${mb(before.rss)}, heap ${mb(before.heap)}, external ${mb(before.external)}`);
  console.log(`  after:  rss ${mb(after.rss)}, heap ${mb(after.heap)}, external ${mb(after.external)}`);
  console.log(
    `  growth: rss ${mb(grew.rss)} (bound ${BOUND_MB.rss}), heap ${mb(grew.heap)} (bound ${BOUND_MB.heap}): ${ok ? "flat" : "GREW"}`,
  );
}
await pool.end();
await admin.query(`DROP SCHEMA ${schema} CASCADE`);
await admin.end();
if (failed) {
  console.error("memory grew past the bound");
  process.exit(1);
}
