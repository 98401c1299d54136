// Read replicas (`replicaUrl`): a throwaway primary and its synchronous streaming standby
// (fixtures/replication.ts), the standby's replay paused with pg_wal_replay_pause() to
// make it lag. Checked: a reader never gets fewer chunks than the primary acknowledged;
// finished replays are served by the replica (stats, and chunks removed on the primary by
// hand that the paused replica still has); a replica that lags, is paused or cannot be
// reached falls back to the primary within the call's deadline; a conversation load after
// a save through the store is never older than that save.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore, type PostgresClient } from "../index.js";
import { FaultProxy } from "./fixtures/fault-proxy.js";
import { caughtUp, startPair, type Pair } from "./fixtures/replication.js";
import { collect, ddl, sleep, uid } from "./helpers.js";

const tables = {
  chunksTable: "aibind_stream_chunks",
  statusTable: "aibind_stream_status",
  conversationsTable: "aibind_conversations",
};
const streamTables = { chunksTable: tables.chunksTable, statusTable: tables.statusTable };
const options = { queryTimeoutMs: 5_000, connectTimeoutMs: 2_000, poolSize: 4 };
let pair: Pair;
/** The replica's address, through a proxy that can make it unreachable. */
let proxy: FaultProxy;
let replicaUrl: string;
const closing: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  pair = await startPair([ddl(tables)]);
  proxy = await FaultProxy.start({ host: "127.0.0.1", port: pair.standby.port });
  replicaUrl = proxy.url(pair.standby.url);
}, 60_000);
afterAll(async () => {
  await Promise.all(closing.map((s) => s.close()));
  await proxy?.close();
  await pair?.close();
});

function pgPool(url: string) {
  const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 2_000 });
  pool.on("error", () => {});
  closing.push({ close: () => pool.end() });
  return pool;
}

let primaryPool: pg.Pool | undefined;

/** The two forms: a connection string and `replicaUrl`, a pg.Pool and `replica`. */
const modes = [
  {
    name: "connection string, replicaUrl",
    // `poolSize` apart: a conversation store's own pool (and replica pool), whose rest the
    // unreachable replica test does not share.
    client: (): string | PostgresClient => pair.primary.url,
    replica: (poolSize = 4) => ({ replicaUrl, poolSize }),
  },
  {
    name: "pg.Pool, replica: a second pg.Pool",
    // One pool for every store, as an app has: what one store's readers learn of a stream
    // holds for the others (a second pool is another source, whose news make the replica
    // be skipped: `Tail::replica_may_serve`).
    client: (): string | PostgresClient => (primaryPool ??= pgPool(pair.primary.url)),
    replica: () => ({ replica: pgPool(replicaUrl) }),
  },
];

describe.each(modes)("read replicas ($name)", (mode) => {
  function streams() {
    const store = new PostgresStreamStore(mode.client(), { ...streamTables, ...options, ...mode.replica() });
    closing.push(store);
    return store;
  }

  const pause = () => pair.standby.sql("SELECT pg_wal_replay_pause()");
  const resume = () => pair.standby.sql("SELECT pg_wal_replay_resume()");

  /** A stream of `n` chunks ("id:1".."id:n"), finished unless `finish` is false. */
  async function written(store: PostgresStreamStore, n: number, finish = true) {
    const id = uid("r");
    await store.create(id);
    for (let i = 1; i <= n; i++) expect(await store.append(id, `${id}:${i}`)).toBe(i);
    if (finish) await store.complete(id);
    return id;
  }

  const chunksOf = (id: string, n: number) =>
    Array.from({ length: n }, (_, i) => ({ seq: i + 1, data: `${id}:${i + 1}` }));

  it("finished replays are served by the replica: it has chunks the primary no longer has", async () => {
    const writer = streams();
    const id = await written(writer, 3_000);
    await caughtUp(pair.primary, pair.standby);
    await pause();
    try {
      // Removed on the primary by hand: only the (paused) replica still has them.
      await pair.primary.sql(`DELETE FROM ${tables.chunksTable} WHERE id = $1`, [id]);
      const reader = streams();
      const before = reader.stats();
      expect(before.replicaReads).toBe(0);
      expect(await collect(reader.readFrom(id, 0))).toEqual(chunksOf(id, 3_000));
      // A replay from the middle too, and the writer's own store (it saw the stream finish).
      expect(await collect(reader.readFrom(id, 2_990))).toEqual(chunksOf(id, 3_000).slice(2_990));
      expect(await collect(writer.readFrom(id, 1_000))).toHaveLength(2_000);
      const after = reader.stats();
      expect(after.replicaReads).toBeGreaterThanOrEqual(3); // 2 pages, then 1
      expect(after.replicaFallbacks).toBe(0);
      expect(after.primaryReads).toBe(0);
    } finally {
      await resume();
    }
  }, 60_000);

  it("a reader never gets fewer chunks than the primary acknowledged, whatever the replica shows", async () => {
    const writer = streams();
    const reader = streams();
    // Shown finished with fewer chunks would be a lost write; shown active: not yet there.
    const partly = await written(writer, 10, false);
    const old = await written(writer, 5);
    await caughtUp(pair.primary, pair.standby);
    await pause();
    try {
      for (let i = 11; i <= 25; i++) await writer.append(partly, `${partly}:${i}`);
      await writer.complete(partly);
      const missing = await written(writer, 40); // not on the replica at all
      // A cleanup and a re-create through the writer's store: the replica still shows the
      // old generation finished, and the writer knows better.
      await pair.primary.sql(`DELETE FROM ${tables.statusTable} WHERE id = $1`, [old]);
      await writer.create(old);
      for (let i = 1; i <= 8; i++) await writer.append(old, `${old}:new:${i}`);
      const before = reader.stats();
      expect(await collect(reader.readFrom(partly, 0))).toEqual(chunksOf(partly, 25));
      expect(await collect(reader.readFrom(missing, 0))).toEqual(chunksOf(missing, 40));
      const fresh = Array.from({ length: 8 }, (_, i) => ({ seq: i + 1, data: `${old}:new:${i + 1}` }));
      const live = writer.readFrom(old, 0)[Symbol.asyncIterator]();
      for (const chunk of fresh) expect((await live.next()).value).toEqual(chunk);
      await writer.complete(old);
      expect((await live.next()).done).toBe(true);
      const after = reader.stats();
      expect(after.replicaReads! - before.replicaReads!).toBe(0);
      expect(after.replicaFallbacks! - before.replicaFallbacks!).toBe(2);
      expect(writer.stats().replicaReads).toBe(0); // it writes `old`: the primary alone
    } finally {
      await resume();
    }
  }, 60_000);

  it("replays right after each complete are exact while the replica's replay flips between paused and running", async () => {
    const writer = streams();
    const reader = streams();
    let flipping = true;
    const flipper = (async () => {
      let paused = false;
      while (flipping) {
        await (paused ? resume() : pause());
        paused = !paused;
        await sleep(25);
      }
      if (paused) await resume();
    })();
    try {
      await Promise.all(
        Array.from({ length: 4 }, async (_, p) => {
          for (let k = 0; k < 6; k++) {
            const n = 20 + ((p * 97 + k * 61) % 400);
            const id = await written(writer, n);
            expect(await collect(reader.readFrom(id, 0))).toEqual(chunksOf(id, n));
          }
        }),
      );
    } finally {
      flipping = false;
      await flipper;
    }
    const stats = reader.stats();
    expect(stats.replicaReads! + stats.primaryReads).toBeGreaterThanOrEqual(24);
  }, 120_000);

  it("live tails stay on the primary, and a reader that went there stays there", async () => {
    const writer = streams();
    const reader = streams();
    const id = await written(writer, 3, false);
    const tail = reader.readFrom(id, 0)[Symbol.asyncIterator]();
    for (let i = 1; i <= 3; i++) expect((await tail.next()).value).toEqual({ seq: i, data: `${id}:${i}` });
    const next = tail.next();
    for (let i = 4; i <= 1_500; i++) await writer.append(id, `${id}:${i}`);
    await writer.complete(id);
    await caughtUp(pair.primary, pair.standby);
    const rest = [(await next).value];
    for (let r = await tail.next(); !r.done; r = await tail.next()) rest.push(r.value);
    expect(rest).toEqual(chunksOf(id, 1_500).slice(3));
    expect(reader.stats().replicaReads).toBe(0);
    // A new reader of the finished stream reads the replica.
    expect(await collect(reader.readFrom(id, 0))).toEqual(chunksOf(id, 1_500));
    expect(reader.stats().replicaReads).toBeGreaterThan(0);
  }, 60_000);

  it("an unreachable replica falls back within the deadline, then rests", async () => {
    const writer = streams();
    const id = await written(writer, 20);
    await caughtUp(pair.primary, pair.standby);
    const reader = streams();
    expect(await collect(reader.readFrom(id, 0))).toEqual(chunksOf(id, 20)); // connected
    proxy.set("blackhole");
    try {
      let started = performance.now();
      expect(await collect(reader.readFrom(id, 0))).toEqual(chunksOf(id, 20));
      const first = performance.now() - started;
      expect(first).toBeLessThan(options.queryTimeoutMs);
      started = performance.now();
      expect(await collect(reader.readFrom(id, 0))).toEqual(chunksOf(id, 20));
      // Resting: straight to the primary, without waiting for the replica again.
      expect(performance.now() - started).toBeLessThan(first);
      const stats = reader.stats();
      expect(stats.replicaFallbacks).toBe(2);
      expect(stats.primaryReads).toBe(2);
    } finally {
      proxy.set("pass");
    }
  }, 60_000);

  it("a conversation load after a save through the store is never older than that save", async () => {
    const store = new PostgresConversationStore(mode.client(), {
      table: tables.conversationsTable,
      ...options,
      ...mode.replica(3),
    });
    closing.push(store);
    const session = uid("c");
    const json = (n: number) => JSON.stringify({ messages: [{ role: "user", content: `v${n}` }] });
    // Replay running (the replica lags by its replay delay): every load sees the last save.
    for (let n = 1; n <= 100; n++) {
      await store.saveJSON(session, json(n));
      expect(await store.loadJSON(session)).toBe(json(n));
    }
    await caughtUp(pair.primary, pair.standby);
    await store.loadJSON(session);
    const served = store.stats().replicaReads!;
    expect(served).toBeGreaterThan(0); // caught up: the replica
    await pause();
    try {
      await store.saveJSON(session, json(101));
      expect(await store.loadJSON(session)).toBe(json(101)); // the replica is behind: the primary
      await store.delete(session);
      expect(await store.loadJSON(session)).toBeNull();
      expect(store.stats().replicaReads).toBe(served);
      // A session this store never wrote: the replica serves it, as of its replay.
      const other = uid("c");
      await pair.primary.sql(
        `INSERT INTO ${tables.conversationsTable} (session_id, data, expires_at) VALUES ($1, $2, $3)`,
        [other, json(1), Date.now() + 60_000],
      );
      expect(await store.loadJSON(other)).toBeNull();
      expect(store.stats().replicaReads).toBe(served + 1);
    } finally {
      await resume();
    }
    await caughtUp(pair.primary, pair.standby);
    expect(await store.loadJSON(session)).toBeNull();
    expect(store.stats().replicaReads).toBe(served + 2);
  }, 60_000);
});
