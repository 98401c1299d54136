// A failover to an asynchronous standby that had not received the last acknowledged
// chunks (a real one: replication is cut before them, the primary crashes, the standby
// is promoted). The store cannot bring them back; it must say so: the producer's next
// append is refused naming the lost writes, and a reader that had read them ends with
// STREAM_WENT_BACK instead of waiting forever.
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { FaultProxy } from "./fixtures/fault-proxy.js";
import { caughtUp, cutReplication, startPair, type Pair } from "./fixtures/replication.js";
import { ddl, rejection, uid } from "./helpers.js";

const tables = { chunksTable: "aibind_stream_chunks", statusTable: "aibind_stream_status" };
const options = { ...tables, queryTimeoutMs: 3_000, connectTimeoutMs: 2_000, poolSize: 4, pollIntervalMs: 200 };
let pair: Pair;
let proxy: FaultProxy;

beforeAll(async () => {
  pair = await startPair([ddl(tables)], { synchronous: false });
  proxy = await FaultProxy.start({ host: "127.0.0.1", port: pair.primary.port });
}, 60_000);
afterAll(async () => {
  await proxy?.close();
  await pair?.close();
});

it("acknowledged chunks lost by an asynchronous failover: the producer is told so, readers end with STREAM_WENT_BACK (both modes)", async () => {
  const pool = new pg.Pool({ connectionString: proxy.url(pair.primary.url), max: 4, connectionTimeoutMillis: 2_000 });
  pool.on("error", () => {});
  const stores = [
    new PostgresStreamStore(proxy.url(pair.primary.url), options),
    new PostgresStreamStore(pool, options),
  ];
  const ids = [uid("async-rust"), uid("async-pg")];
  try {
    for (const [i, store] of stores.entries()) {
      await store.create(ids[i]);
      for (let k = 1; k <= 3; k++) await store.append(ids[i], `c${k}`);
    }
    await caughtUp(pair.primary, pair.standby);
    await cutReplication(pair.primary, pair.standby);
    // Acknowledged by the primary, never on the standby.
    for (const [i, store] of stores.entries()) for (let k = 4; k <= 5; k++) await store.append(ids[i], `c${k}`);
    const read = ids.map(() => [] as string[]);
    const readers = stores.map((store, i) =>
      (async () => {
        for await (const { data } of store.readFrom(ids[i], 0)) read[i].push(data);
      })().then(
        () => ({ ended: "without an error" }),
        (err) => err,
      ),
    );
    while (read.some((r) => r.length < 5)) await new Promise((resolve) => setTimeout(resolve, 10));
    await pair.primary.stop("immediate");
    await pair.standby.sql("SELECT pg_promote()");
    (proxy.target as { port: number }).port = pair.standby.port;
    const promotedAt = Date.now();
    for (const [i, store] of stores.entries()) {
      // Appended until the store reaches the new primary (refused, not retried forever).
      let err: { code?: string; message: string };
      for (;;) {
        err = await rejection(store.append(ids[i], "c6"));
        if (err.code === "STREAM_NOT_ACTIVE" || Date.now() - promotedAt > 10_000) break;
      }
      expect(err).toMatchObject({ code: "STREAM_NOT_ACTIVE", retryable: false });
      expect(err.message).toContain("went back from 5 to 3: the database lost writes it had acknowledged");
    }
    const ended = await Promise.race([
      Promise.all(readers),
      new Promise((resolve) => setTimeout(() => resolve("readers still waiting after 10 s"), 10_000)),
    ]);
    expect(ended).toEqual([
      expect.objectContaining({ code: "STREAM_WENT_BACK" }),
      expect.objectContaining({ code: "STREAM_WENT_BACK" }),
    ]);
    console.log(`asynchronous failover: readers ended ${Date.now() - promotedAt} ms after the promotion`);
    expect(read).toEqual([
      ["c1", "c2", "c3", "c4", "c5"],
      ["c1", "c2", "c3", "c4", "c5"],
    ]);
    const rows = await pair.standby.sql(
      `SELECT id, count(*)::int AS n FROM ${tables.chunksTable} GROUP BY id ORDER BY id`,
    );
    expect(rows.map((r) => r.n)).toEqual([3, 3]);
  } finally {
    for (const store of stores) await store.close();
    await pool.end();
  }
}, 40_000);
