// What running behind a transaction pooler costs: one caller at a time (latency) and 64
// at once (throughput), for getStatus (a read) and append (a write), by how statements
// run: prepared once per connection ("none"), or unnamed, each in a pipelined
// BEGIN; SET LOCAL statement_timeout; ...; COMMIT ("transaction"); directly and through
// PgBouncer (its own, on a free port).
//
//   node benchmark/pooler-cost.mjs        (against DATABASE_URL, or a throwaway server)
import { PostgresStreamStore, migrate } from "../index.js";
import { startPgBouncer } from "../scripts/pgbouncer.mjs";
import { startThrowaway } from "../scripts/throwaway-postgres.mjs";

const server = process.env.DATABASE_URL ? null : await startThrowaway();
const direct =
  process.env.DATABASE_URL ?? /** @type {import("../scripts/throwaway-postgres.mjs").Throwaway} */ (server).url;
await migrate(direct);
const txn = await startPgBouncer({ target: direct, mode: "transaction" });
const ses = await startPgBouncer({ target: direct, mode: "session" });
/** @type {[path: string, url: string, pooler: import("../index.js").PostgresPoolOptions["pooler"]][]} */
const cases = [
  ["direct", direct, "none"],
  ["direct", direct, "transaction"],
  ["direct", direct, "auto"],
  ["PgBouncer session", ses.url, "session"],
  ["PgBouncer session", ses.url, "auto"],
  ["PgBouncer transaction", txn.url, "auto"],
];
const N = 2000;
console.log(
  "| path | pooler | runs as | getStatus µs (1 caller) | append µs (1 caller) | getStatus/s (64 callers) | append/s (64 callers) |",
);
console.log("|---|---|---|---:|---:|---:|---:|");
for (const [path, url, pooler] of cases) {
  const store = new PostgresStreamStore(url, { pooler });
  const id = `cost-${pooler}-${Math.random()}`;
  await store.create(id);
  for (let i = 0; i < 200; i++) await store.getStatus(id); // warm
  let t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await store.getStatus(id);
  const read1 = Number(process.hrtime.bigint() - t) / 1e3 / N;
  t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await store.append(id, "x");
  const write1 = Number(process.hrtime.bigint() - t) / 1e3 / N;
  const many = async (call) => {
    const started = process.hrtime.bigint();
    let n = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (Number(process.hrtime.bigint() - started) < 2e9) {
          await call();
          n++;
        }
      }),
    );
    return Math.round(n / (Number(process.hrtime.bigint() - started) / 1e9));
  };
  const readN = await many(() => store.getStatus(id));
  const writeN = await many(() => store.append(id, "x"));
  console.log(
    `| ${path} | ${pooler} | ${store.stats().pooler} | ${read1.toFixed(0)} | ${write1.toFixed(0)} | ${readN} | ${writeN} |`,
  );
  await store.close();
}
await txn.stop();
await ses.stop();
await server?.stop();
