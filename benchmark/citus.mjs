// `npm run bench:citus`: on a throwaway Citus cluster (scripts/with-citus.mjs), what an
// awaited append costs against a raw single-shard INSERT on the same cluster, for the Rust
// pool and a pg.Pool, measured side by side in interleaved rounds (the machine may be
// busy: compare the ratios, not the milliseconds); and how many concurrent appends to
// many streams go through per second. Prints a table (docs/citus.md has a run's figures).
import pg from "pg";
import { migrate, PostgresStreamStore } from "../index.js";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("run it with `npm run bench:citus` (it starts the cluster)");
await migrate(url, { citus: true });
const pool = new pg.Pool({ connectionString: url, max: 10 });
const stores = {
  "append, connection string": new PostgresStreamStore(url),
  "append, pg.Pool": new PostgresStreamStore(pool),
};
const ROUNDS = 10;
const PER_ROUND = 40;
/** @type {Record<string, number[]>} */
const times = { "raw single-shard INSERT": [], ...Object.fromEntries(Object.keys(stores).map((k) => [k, []])) };
const run = `b${Date.now()}`;
/** @type {Record<string, string>} */
const ids = {};
for (const [name, store] of Object.entries(stores)) {
  ids[name] = `${run}-${name.length}`;
  await store.create(ids[name]);
}
let rawSeq = 0;
for (let round = 0; round < ROUNDS; round++) {
  for (let i = 0; i < PER_ROUND; i++) {
    const t = performance.now();
    await pool.query({
      name: "raw",
      text: "INSERT INTO aibind_stream_chunks (id, seq, data) VALUES ($1, $2, $3)",
      values: [`${run}-raw`, ++rawSeq, "token"],
    });
    times["raw single-shard INSERT"].push(performance.now() - t);
  }
  for (const [name, store] of Object.entries(stores)) {
    for (let i = 0; i < PER_ROUND; i++) {
      const t = performance.now();
      await store.append(ids[name], "token");
      times[name].push(performance.now() - t);
    }
  }
}
const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const raw = p50(times["raw single-shard INSERT"]);
console.log(`| awaited, one at a time (${ROUNDS * PER_ROUND} each, interleaved) | p50 ms | x raw INSERT |`);
console.log("|---|---|---|");
for (const [name, xs] of Object.entries(times)) {
  console.log(`| ${name} | ${p50(xs).toFixed(2)} | ${(p50(xs) / raw).toFixed(1)} |`);
}

// Throughput: 50 streams, 40 appends each, all at once.
console.log("\n| 2,000 appends to 50 streams at once | appends/s |\n|---|---|");
for (const [name, store] of Object.entries(stores)) {
  const streams = Array.from({ length: 50 }, (_, i) => `${run}-t${name.length}-${i}`);
  await Promise.all(streams.map((id) => store.create(id)));
  const t = performance.now();
  await Promise.all(streams.flatMap((id) => Array.from({ length: 40 }, (_, k) => store.append(id, `c${k}`))));
  console.log(`| ${name} | ${Math.round(2000 / ((performance.now() - t) / 1000))} |`);
}
for (const store of Object.values(stores)) await store.close();
await pool.end();
