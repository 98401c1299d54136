// Producers: fenced after their stream is re-created, two producers on one stream, the
// same chunk appended again after APPEND_OUTCOME_UNKNOWN, and stop signals that reach the
// producer at once, from this process or another.
import { fork, type ChildProcess } from "node:child_process";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore, type PostgresClient } from "../index.js";
import { FaultProxy } from "./fixtures/fault-proxy.js";
import { DATABASE_URL, adminPool, appendAgain, eventually, freshSchema, rejection, sleep, uid, urlWithApp } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
const pools: pg.Pool[] = [];

beforeAll(async () => {
  tables = await freshSchema(admin);
});

afterAll(async () => {
  for (const pool of pools) await pool.end().catch(() => {});
  await tables.drop();
  await admin.end();
});

const backends: Array<{ name: string; client(url?: string): string | PostgresClient }> = [
  { name: "connection string", client: (url = DATABASE_URL) => url },
  {
    name: "pg.Pool",
    client: (url = DATABASE_URL) => {
      // connectionTimeoutMillis: see healing.test.ts (a handshake blackholed by a fault).
      const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5_000 });
      pool.on("error", () => {});
      pools.push(pool);
      return pool;
    },
  },
];

async function rows(id: string) {
  const { rows } = await admin.query(`SELECT seq, data FROM ${tables.stream.chunksTable} WHERE id = $1 ORDER BY seq`, [id]);
  return rows as Array<{ seq: number; data: string }>;
}

/** What cleanup does to a stream its writer abandoned, then a `create` of the same id elsewhere. */
async function reapAndRecreate(id: string, other: PostgresStreamStore, chunks: string[]) {
  await admin.query(`DELETE FROM ${tables.stream.chunksTable} WHERE id = $1`, [id]);
  await admin.query(`DELETE FROM ${tables.stream.statusTable} WHERE id = $1`, [id]);
  await other.create(id);
  for (const chunk of chunks) await other.append(id, chunk);
}

describe.each(backends)("fenced producers ($name)", (backend) => {
  it.each([
    ["fewer chunks than the zombie wrote", ["new-1"]],
    ["more chunks than the zombie wrote", ["new-1", "new-2", "new-3", "new-4", "new-5"]],
    ["none yet", []],
  ])("a producer whose stream was re-created (%s) appends nothing into the new one", async (_name, fresh) => {
    const zombie = new PostgresStreamStore(backend.client(), tables.stream);
    const other = new PostgresStreamStore(backend.client(), tables.stream);
    const id = uid("zombie");
    await zombie.create(id);
    for (const chunk of ["old-1", "old-2", "old-3"]) await zombie.append(id, chunk);
    await reapAndRecreate(id, other, fresh);
    const err = await rejection(zombie.append(id, "old-4"));
    // Fewer chunks (but some): as lost writes look too, which the store cannot tell apart.
    const why =
      fresh.length > 0 && fresh.length < 3
        ? `its chunk count went back from 3 to ${fresh.length}: the database lost writes it had acknowledged (a failover to an asynchronous standby), or `
        : "";
    expect([err.code, err.message]).toEqual(["STREAM_NOT_ACTIVE", `Stream "${id}" not found or not active (${why}it was re-created since this store wrote to it)`]);
    // And stays fenced, while the new generation goes on.
    expect((await rejection(zombie.append(id, "old-5"))).code).toBe("STREAM_NOT_ACTIVE");
    await other.append(id, "new-next");
    expect((await rows(id)).map((r) => r.data)).toEqual([...fresh, "new-next"]);
    // A store that creates the stream itself writes to it again.
    await other.complete(id);
    await reapAndRecreate(id, zombie, []);
    expect(await zombie.append(id, "again")).toBe(1);
    await zombie.close();
    await other.close();
  });
});

describe("two producers on one stream", () => {
  it.each([
    ["connection string and connection string", 0, 0],
    ["pg.Pool and pg.Pool", 1, 1],
    ["connection string and pg.Pool", 0, 1],
  ])("%s: every append stored once, seqs gapless, each producer's chunks in its call order", async (_name, a, b) => {
    const first = new PostgresStreamStore(backends[a].client(), tables.stream);
    const second = new PostgresStreamStore(backends[b].client(), tables.stream);
    const id = uid("two");
    await first.create(id);
    const produce = async (store: PostgresStreamStore, name: string) => {
      const seqs: number[] = [];
      for (let i = 0; i < 60; i++) seqs.push(await store.append(id, `${name}-${i}`));
      return seqs;
    };
    const [x, y] = await Promise.all([produce(first, "x"), produce(second, "y")]);
    const stored = await rows(id);
    expect(stored.map((r) => r.seq)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    for (const [name, seqs] of [["x", x], ["y", y]] as const) {
      const mine = stored.filter((r) => r.data.startsWith(`${name}-`));
      expect(mine.map((r) => r.data)).toEqual(Array.from({ length: 60 }, (_, i) => `${name}-${i}`));
      expect(mine.map((r) => r.seq)).toEqual(seqs);
    }
    await first.close();
    await second.close();
  });
});

const results: string[] = [];
afterAll(() => console.log(`[producers] replies dropped: ${results.join("; ")}`));

describe.each(backends)("after APPEND_OUTCOME_UNKNOWN ($name)", (backend) => {
  it("appending the same chunk again stores it once, whether it had landed or not", async () => {
    const target = new URL(DATABASE_URL);
    const proxy = await FaultProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
    try {
      const store = new PostgresStreamStore(backend.client(proxy.url(DATABASE_URL)), { ...tables.stream, queryTimeoutMs: 600, connectTimeoutMs: 300 });
      const id = uid("unknown");
      await store.create(id);
      expect(await store.append(id, "one")).toBe(1);
      // Every statement that reaches the server commits; no answer ever comes back.
      proxy.set("dropReplies", { which: "all" });
      const err = await rejection(store.append(id, "two"));
      const before = (await rows(id)).map((r) => r.data);
      if (err.code === "APPEND_OUTCOME_UNKNOWN") {
        expect(err.retryable).toBe(true);
      } else {
        // Certain: it never reached the server (no connection could be made).
        expect(["CONNECTION_ERROR", "QUERY_TIMEOUT"]).toContain(err.code);
        expect(before).toEqual(["one"]);
      }
      proxy.set("pass", { which: "new" });
      proxy.reset();
      // Appended again, it is stored once: found where it landed, or stored now.
      expect(await appendAgain(store, id, "two")).toBe(2);
      expect(await store.append(id, "three")).toBe(3);
      expect((await rows(id)).map((r) => r.data)).toEqual(["one", "two", "three"]);
      results.push(`${backend.name}: ${err.code}${before.length === 2 ? " (it had landed)" : ""}`);
      await store.close();
    } finally {
      await proxy.close();
    }
  }, 20_000);
});

/** A store in another process, for stop requests that land on another app instance. */
async function otherProcess(): Promise<{ call(op: string, ...args: unknown[]): Promise<unknown>; close(): void }> {
  const child: ChildProcess = fork(new URL("./fixtures/store-worker.mjs", import.meta.url), {
    env: { ...process.env, STORE_OPTIONS: JSON.stringify(tables.stream) },
  });
  await new Promise<void>((resolve) => child.once("message", () => resolve()));
  let n = 0;
  const waiting = new Map<number, (m: { ok: boolean; value?: unknown; message?: string }) => void>();
  child.on("message", (m: { n: number; ok: boolean }) => waiting.get(m.n)?.(m));
  return {
    call: (op, ...args) =>
      new Promise((resolve, reject) => {
        waiting.set(++n, (m) => (m.ok ? resolve(m.value) : reject(new Error(m.message))));
        child.send({ n, op, args });
      }),
    close: () => child.disconnect(),
  };
}

const aborted = (signal: AbortSignal) =>
  new Promise<number>((resolve) => {
    if (signal.aborted) resolve(performance.now());
    else signal.addEventListener("abort", () => resolve(performance.now()), { once: true });
  });

describe("stop signals", () => {
  it("a stop through another store of this process aborts the producer's signal at once; appends do not", async () => {
    const producer = new PostgresStreamStore(DATABASE_URL, tables.stream);
    const stopper = new PostgresStreamStore(backends[1].client(), tables.stream);
    const id = uid("stop-here");
    await producer.create(id);
    const signal = producer.stopSignal(id);
    expect(producer.stopSignal(id)).toBe(signal);
    for (let i = 0; i < 5; i++) await producer.append(id, `t${i}`);
    await sleep(50);
    expect(signal.aborted).toBe(false);
    const started = performance.now();
    const when = aborted(signal);
    await stopper.stop(id);
    expect((await when) - started).toBeLessThan(200);
    expect(signal.reason).toMatchObject({ name: "PostgresStoreError", code: "STREAM_NOT_ACTIVE" });
    await producer.close();
    await stopper.close();
  });

  it("a stop in another process aborts the producer's signal (LISTEN), also after the listener was lost", async () => {
    const app = uid("stop-listen").slice(0, 40);
    const producer = new PostgresStreamStore(urlWithApp(app), tables.stream);
    const other = await otherProcess();
    try {
      const latencies: number[] = [];
      for (let round = 0; round < 6; round++) {
        if (round === 3) {
          // The producer's LISTEN connection is killed: it reconnects, and stops still arrive.
          await eventually(async () => {
            const { rows } = await admin.query("SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'", [app]);
            return rows.some((r) => r.t);
          });
          await sleep(300);
        }
        const id = uid("stop-there");
        await producer.create(id);
        const signal = producer.stopSignal(id);
        await producer.append(id, "token");
        await sleep(30); // the watcher waits
        const started = performance.now();
        const when = aborted(signal);
        await other.call("stop", id);
        latencies.push((await when) - started);
      }
      // Generous bounds: the figures themselves are measured by the benchmark.
      for (const ms of latencies) expect(ms).toBeLessThan(1_500);
      latencies.sort((a, b) => a - b);
      expect(latencies[Math.floor(latencies.length / 2)]).toBeLessThan(500);
    } finally {
      other.close();
      await producer.close();
    }
  }, 30_000);

  it("with a JS client (no LISTEN) a stop elsewhere is seen within pollIntervalMs", async () => {
    const producer = new PostgresStreamStore(backends[1].client(), { ...tables.stream, pollIntervalMs: 100 });
    const other = await otherProcess();
    try {
      const id = uid("stop-poll");
      await producer.create(id);
      const signal = producer.stopSignal(id);
      await sleep(30);
      const started = performance.now();
      const when = aborted(signal);
      await other.call("fail", id, "stopped by an operator");
      expect((await when) - started).toBeLessThan(100 + 400);
    } finally {
      other.close();
      await producer.close();
    }
  });

  it("a missing stream aborts at once; a closed store's signal never aborts", async () => {
    const store = new PostgresStreamStore(DATABASE_URL, tables.stream);
    const missing = store.stopSignal(uid("never"));
    await aborted(missing);
    const id = uid("closing");
    await store.create(id);
    const signal = store.stopSignal(id);
    await sleep(30);
    await store.close();
    await admin.query(`UPDATE ${tables.stream.statusTable} SET state = 'stopped' WHERE id = $1`, [id]);
    await sleep(300);
    expect(signal.aborted).toBe(false);
    expect(() => store.stopSignal(42 as never)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });
});
