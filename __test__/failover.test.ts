// Through a failover: a primary and its synchronous standby (throwaway servers of this
// test's own, fixtures/replication.ts), producers that retry a failed append with the
// same chunk, and readers here and in another process. Checked in every scenario: every
// acknowledged chunk is stored once, in order, nothing else is; readers get exactly
// those; the store recovers within a bound, with the same store object.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { FaultProxy } from "./fixtures/fault-proxy.js";
import { produce, readInAnotherProcess, recovered, type Producer } from "./fixtures/producer.js";
import { startPair, type Pair, type Server } from "./fixtures/replication.js";
import { collect, ddl, sleep, uid } from "./helpers.js";

const tables = { chunksTable: "aibind_stream_chunks", statusTable: "aibind_stream_status" };
const options = { ...tables, queryTimeoutMs: 5_000, connectTimeoutMs: 2_000, poolSize: 4 };
let pair: Pair;
let proxy: FaultProxy;

beforeAll(async () => {
  pair = await startPair([ddl(tables)]);
  proxy = await FaultProxy.start({ host: "127.0.0.1", port: pair.primary.port });
}, 60_000);
afterAll(async () => {
  await proxy?.close();
  await pair?.close();
});

/** The proxy's new connections go to `server` (a hostname that moved, as DNS or HAProxy). */
function repoint(server: Server) {
  (proxy.target as { port: number }).port = server.port;
}

const pgPool = (url: string, app?: string) => {
  const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 2_000, application_name: app });
  pool.on("error", () => {});
  return pool;
};

/** What `server` holds of the streams: per stream, its chunks in seq order. */
async function stored(server: Server, ids: string[]) {
  const rows = await server.sql(`SELECT id, seq, data FROM ${tables.chunksTable} WHERE id = ANY($1) ORDER BY id, seq`, [
    ids,
  ]);
  const out = new Map(ids.map((id) => [id, [] as { seq: number; data: string }[]]));
  for (const { id, seq, data } of rows) out.get(id)!.push({ seq, data });
  return out;
}

/** Every acknowledged chunk once, in order, at seqs 1..n, and nothing else. */
function expectExact(producer: Producer, got: Map<string, { seq: number; data: string }[]>) {
  for (const [id, acked] of producer.acked) {
    expect(acked.map((c, i) => [c.seq, c.data])).toEqual(acked.map((_, i) => [i + 1, `${id}:${i + 1}`]));
    expect(got.get(id)!.map((c) => [c.seq, c.data])).toEqual(acked.map((c) => [c.seq, c.data]));
  }
}

/** Only errors an app is told to retry. */
function expectRetryable(producer: Producer) {
  for (const error of producer.errors)
    expect({ ...error, retryable: error.retryable }).toMatchObject({ retryable: true });
}

describe("failover", () => {
  it("a pooled connection left on a read-only node is not reused: the same store recovers within 1 s, wake-ups too", async () => {
    const rust = new PostgresStreamStore(`${proxy.url(pair.primary.url)}?application_name=ro_rust`, options);
    const pool = pgPool(proxy.url(pair.primary.url), "ro_pg");
    const viaPool = new PostgresStreamStore(pool, options);
    const [a, b] = [uid("ro-rust"), uid("ro-pg")];
    await rust.create(a);
    await viaPool.create(b);
    // A reader in another process, straight to the primary: woken by notifications only.
    const reader = readInAnotherProcess(pair.primary.url, tables, [a, b]);
    const producers = [produce(rust, [a], 20), produce(viaPool, [b], 20)];
    try {
      await sleep(300);
      // The address leads to the standby for a while (the proxy's links are cut), and a
      // read on each store leaves a pooled connection there...
      await Promise.all(producers.map((p) => p.hold()));
      repoint(pair.standby);
      proxy.reset();
      await sleep(50);
      expect(await rust.getStatus(a)).toMatchObject({ state: "active" });
      expect(await viaPool.getStatus(b)).toMatchObject({ state: "active" });
      const onStandby = await pair.standby.sql(
        "SELECT application_name AS app FROM pg_stat_activity WHERE application_name IN ('ro_rust', 'ro_pg')",
      );
      expect(new Set(onStandby.map((r) => r.app))).toEqual(new Set(["ro_rust", "ro_pg"]));
      // ...then it leads back to the primary, leaving those connections where they are
      // (HAProxy without shutdown-sessions; Aurora's old writer back as a reader).
      repoint(pair.primary);
      const movedAt = Date.now();
      for (const p of producers) p.resume();
      const recovery = await Promise.all(producers.map((p) => recovered(p, movedAt, 5_000)));
      console.log(`read-only node: recovered in ${recovery.join(" / ")} ms (Rust pool / pg.Pool)`);
      for (const ms of recovery) expect(ms).toBeLessThanOrEqual(1_000);
      // Wake-ups in the other process: chunks acknowledged from 1 s after the recovery on
      // reach it within 1 s (it polls once a minute).
      const from = movedAt + Math.max(...recovery) + 1_000;
      await sleep(from - Date.now() + 600);
      await Promise.all(producers.map((p) => p.stop()));
      await rust.complete(a);
      await viaPool.complete(b);
      await reader.done;
      const latencies = producers.flatMap((p, i) =>
        reader.read.get([a, b][i])!.flatMap(({ at }, k) => {
          const acked = p.ackTimes[k];
          return acked >= from ? [at - acked] : [];
        }),
      );
      console.log(`read-only node: wake-ups after recovery, most ${Math.max(...latencies)} ms of ${latencies.length}`);
      expect(latencies.length).toBeGreaterThan(0);
      for (const ms of latencies) expect(ms).toBeLessThanOrEqual(1_000);
      for (const p of producers) expectRetryable(p);
      const inDb = await stored(pair.primary, [a, b]);
      expectExact(producers[0], inDb);
      expectExact(producers[1], inDb);
      for (const [i, p] of producers.entries()) {
        const id = [a, b][i];
        expect(reader.read.get(id)!.map((c) => [c.seq, c.data])).toEqual(p.acked.get(id)!.map((c) => [c.seq, c.data]));
      }
    } finally {
      repoint(pair.primary);
      reader.kill();
      await Promise.all(producers.map((p) => p.stop()));
      await rust.close();
      await viaPool.close();
      await pool.end();
    }
  }, 40_000);

  it("several hosts in the connection string, the standby first: the store writes on the primary", async () => {
    const url = `postgres://postgres@127.0.0.1:${pair.standby.port},127.0.0.1:${pair.primary.port}/aibind_test?application_name=multi_host`;
    const store = new PostgresStreamStore(url, options);
    try {
      const id = uid("multi");
      await store.create(id);
      expect(await store.append(id, "x")).toBe(1);
      const onStandby = await pair.standby.sql("SELECT 1 FROM pg_stat_activity WHERE application_name = 'multi_host'");
      expect(onStandby).toHaveLength(0);
    } finally {
      await store.close();
    }
  });

  it("the LISTEN connection stays off a read-only node, and leaves a node that became read-only", async () => {
    const store = new PostgresStreamStore(`${pair.primary.url}?application_name=ro_listen`, {
      ...options,
      pollIntervalMs: 100,
    });
    const readOnly = async (on: boolean) => {
      await pair.primary.sql(
        on ? "ALTER SYSTEM SET default_transaction_read_only = on" : "ALTER SYSTEM RESET default_transaction_read_only",
      );
      await pair.primary.sql("SELECT pg_reload_conf()");
    };
    const listener = () => store.stats().listener;
    const within = async (ms: number, state: string) => {
      const started = Date.now();
      while (listener() !== state && Date.now() - started < ms) await sleep(10);
      expect(listener()).toBe(state);
      return Date.now() - started;
    };
    const id = uid("listen");
    await store.create(id);
    try {
      await readOnly(true);
      // A waiting reader starts the listener: on a read-only node (LISTEN would work
      // there, and hear nothing of the writers) it does not settle.
      const reading = collect(store.readFrom(id, 0));
      await sleep(1_500);
      expect(listener()).not.toBe("confirmed");
      await readOnly(false);
      const confirmedIn = await within(2_000, "confirmed");
      // The node becomes read-only while it listens: it leaves.
      await readOnly(true);
      const leftIn = await within(3_000, "connecting");
      await readOnly(false);
      await within(2_000, "confirmed");
      console.log(
        `listener: confirmed ${confirmedIn} ms after the node became writable, left ${leftIn} ms after it became read-only`,
      );
      await store.complete(id);
      expect(await reading).toEqual([]);
    } finally {
      await readOnly(false);
      await store.close();
    }
  });

  it("crash and promote: a moved hostname (both modes) and a multi-host connection string lose, double and reorder nothing", async () => {
    const multiHost = `postgres://postgres@127.0.0.1:${pair.primary.port},127.0.0.1:${pair.standby.port}/aibind_test`;
    const pool = pgPool(proxy.url(pair.primary.url));
    const stores = [
      new PostgresStreamStore(proxy.url(pair.primary.url), options),
      new PostgresStreamStore(pool, options),
      new PostgresStreamStore(multiHost, options),
    ];
    const names = ["moved hostname, Rust pool", "moved hostname, pg.Pool", "multi-host, Rust pool"];
    const ids = stores.map((_, i) => [uid(`crash${i}`), uid(`crash${i}`)]);
    for (const [i, store] of stores.entries()) for (const id of ids[i]) await store.create(id);
    // Readers of every stream, in this process, from the start to the finish.
    const readers = stores.flatMap((store, i) => ids[i].map((id) => collect(store.readFrom(id, 0))));
    const producers = stores.map((store, i) => produce(store, ids[i]));
    try {
      await sleep(400);
      await pair.primary.stop("immediate");
      await sleep(300);
      await pair.standby.sql("SELECT pg_promote()");
      repoint(pair.standby);
      const promotedAt = Date.now();
      const recovery = await Promise.all(producers.map((p) => recovered(p, promotedAt)));
      console.log(`crash and promote: recovered in ${recovery.map((ms, i) => `${names[i]} ${ms} ms`).join(", ")}`);
      for (const ms of recovery) expect(ms).toBeLessThanOrEqual(3_000);
      await sleep(300);
      await Promise.all(producers.map((p) => p.stop()));
      for (const [i, store] of stores.entries()) for (const id of ids[i]) await store.complete(id);
      const read = await Promise.all(readers);
      for (const p of producers) expectRetryable(p);
      const inDb = await stored(pair.standby, ids.flat());
      for (const p of producers) expectExact(p, inDb);
      const readBy = new Map(ids.flat().map((id, k) => [id, read[k].map(({ seq, data }) => ({ seq, data }))]));
      for (const p of producers) expectExact(p, readBy);
      for (const p of producers) expect([...p.acked.values()].every((chunks) => chunks.length > 0)).toBe(true);
    } finally {
      await Promise.all(producers.map((p) => p.stop()));
      for (const store of stores) await store.close();
      await pool.end();
    }
  }, 40_000);
});
