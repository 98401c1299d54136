// Chunks appended back to back are announced to other processes at most once every
// `notifyBatchMs` (lib/appends.cjs, lib/client-hub.cjs): a lone append within that time of
// the last announcement holds its own back, and the next append that announces carries
// it in the same transaction. A listener elsewhere wakes once per batch, not once a chunk.
// What it hears still names every acknowledged chunk, once and in order, also when the
// append that carried earlier chunks fails.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, collect, eventually, freshSchema, sleep, uid, urlWithApp } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

/** Listens as a process elsewhere would: the seqs of `id` each notification carries. */
async function listen(id: string) {
  const client = new pg.Client({ connectionString: DATABASE_URL });
  await client.connect();
  const heard: number[][] = [];
  client.on("notification", (message) => {
    const payload = JSON.parse(message.payload ?? "{}") as { c?: [string, string, number, string][] };
    const seqs = (payload.c ?? []).filter(([, stream]) => stream === id).map(([, , seq]) => seq);
    if (seqs.length > 0) heard.push(seqs);
  });
  await client.query("LISTEN aibind_stream_writes");
  return { heard, end: () => client.end() };
}

const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const tokens = (n: number) => upTo(n).map((seq) => ({ seq, data: `token ${seq}` }));

/**
 * A pg.Pool whose clients send the first `faults` appends that carry earlier chunks'
 * announcement (the statement with a fifth parameter) asking for the wrong seq: the
 * database refuses them, as it would an append another producer got ahead of.
 */
function poolRefusingCarriers(faults: number) {
  const refused = { count: 0, carriers: 0 };
  class Refusing extends pg.Client {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    query(config: any, values?: any, callback?: any): any {
      const params = typeof config === "object" && config !== null ? (config.values ?? values) : values;
      if (Array.isArray(params) && params.length === 5) {
        refused.carriers++;
        if (refused.count < faults) {
          refused.count++;
          const wrong = [...params];
          wrong[3] = Number(wrong[3]) + 1_000;
          if (config.values) return super.query({ ...config, values: wrong }, values, callback);
          return super.query(config, wrong, callback);
        }
      }
      return super.query(config, values, callback);
    }
  }
  return { pool: new pg.Pool({ connectionString: DATABASE_URL, max: 4, Client: Refusing }), refused };
}

describe("announcements of chunks appended back to back go out in batches", () => {
  const clients = [
    ["a connection string (Rust pool)", () => urlWithApp(uid("batched"))],
    ["a pg.Pool", () => new pg.Pool({ connectionString: DATABASE_URL, max: 4 })],
  ] as const;

  it.each(clients)(
    "%s: a listener elsewhere hears every chunk once, in order, in far fewer notifications than chunks",
    async (_, client) => {
      const pool = client();
      const batchMs = 50;
      const store = new PostgresStreamStore(pool, { ...tables.stream, notifyBatchMs: batchMs });
      const readerPool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
      const elsewhere = new PostgresStreamStore(readerPool, tables.stream);
      const id = uid("batched");
      await store.create(id);
      const listener = await listen(id);
      try {
        const reading = collect(elsewhere.readFrom(id, 0));
        await sleep(200); // the reader waits at the end
        const n = 300;
        const started = performance.now();
        for (let i = 1; i <= n; i++) await store.append(id, `token ${i}`);
        const tookMs = performance.now() - started;
        // The last chunks are announced without another append (held, then sent alone).
        await eventually(async () => listener.heard.flat().length >= n, 5_000);
        expect(listener.heard.flat()).toEqual(upTo(n));
        // One notification per batch: at most one carried by an append and one sent alone
        // every batchMs, and the notify choice's trials (8 inside of every 256 appends or
        // more), never one a chunk.
        expect(listener.heard.length).toBeLessThanOrEqual(2 * Math.ceil(tookMs / batchMs) + 2 * (8 + 8) + 4);
        expect(listener.heard.length).toBeLessThan(n / 2);
        await store.complete(id);
        expect(await reading).toEqual(tokens(n));
      } finally {
        await listener.end();
        await store.close();
        await elsewhere.close();
        if (typeof pool !== "string") await pool.end();
        await readerPool.end();
      }
    },
  );

  it.each(clients)("%s: notifyBatchMs: 0 announces each chunk on its own", async (_, client) => {
    const pool = client();
    const store = new PostgresStreamStore(pool, { ...tables.stream, notifyBatchMs: 0 });
    const id = uid("unbatched");
    await store.create(id);
    const listener = await listen(id);
    try {
      const n = 60;
      for (let i = 1; i <= n; i++) await store.append(id, `token ${i}`);
      await eventually(async () => listener.heard.flat().length >= n, 5_000);
      expect(listener.heard.flat()).toEqual(upTo(n));
      // Each lone append announces its own chunk, but for the notify choice's trials
      // announced after their appends (8), which go out together, or with the next.
      expect(listener.heard.length).toBeGreaterThan(n / 2);
    } finally {
      await listener.end();
      await store.close();
      if (typeof pool !== "string") await pool.end();
    }
  });

  it("an append that carried earlier chunks' announcement and was refused: they are announced anyway", async () => {
    const { pool, refused } = poolRefusingCarriers(3);
    const store = new PostgresStreamStore(pool, { ...tables.stream, notifyBatchMs: 50 });
    const readerPool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    const elsewhere = new PostgresStreamStore(readerPool, tables.stream);
    const id = uid("refused");
    await store.create(id);
    const listener = await listen(id);
    try {
      const reading = collect(elsewhere.readFrom(id, 0));
      await sleep(200);
      let n = 0;
      // Appends until three carrying appends were refused (each then stored by its retry).
      while (refused.count < 3 && n < 5_000) {
        n++;
        expect(await store.append(id, `token ${n}`)).toBe(n);
      }
      expect(refused.count).toBe(3);
      await eventually(async () => listener.heard.flat().length >= n, 5_000);
      // Every chunk heard, none twice; a refused carrier's chunks may come after later ones.
      expect([...listener.heard.flat()].sort((a, b) => a - b)).toEqual(upTo(n));
      await store.complete(id);
      expect(await reading).toEqual(tokens(n));
    } finally {
      await listener.end();
      await store.close();
      await elsewhere.close();
      await pool.end();
      await readerPool.end();
    }
  });
});
