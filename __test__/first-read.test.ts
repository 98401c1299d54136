// A new reader reads the database before it waits, even where this process already
// knows the stream (another reader of it is waiting at the end): rows that a writer
// which sends no notification committed meanwhile (the original package, in a mixed
// deployment) reach it at once, not at the next check.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore, type PostgresClient } from "../index.js";
import { DATABASE_URL, adminPool, freshSchema, sleep, uid, urlWithApp } from "./helpers.js";

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

const backends: Array<{ name: string; client(): string | PostgresClient }> = [
  { name: "connection string", client: () => urlWithApp(uid("first")) },
  {
    name: "pg.Pool",
    client: () => {
      const pool = new pg.Pool({ connectionString: DATABASE_URL });
      pools.push(pool);
      return pool;
    },
  },
];

/** A chunk written as the original package writes it: two statements, no NOTIFY. */
async function writeQuietly(id: string, seq: number, data: string) {
  await admin.query(`UPDATE ${tables.stream.statusTable} SET total_chunks = $2 WHERE id = $1`, [id, seq]);
  await admin.query(`INSERT INTO ${tables.stream.chunksTable} (id, seq, data) VALUES ($1, $2, $3)`, [id, seq, data]);
}

describe.each(backends)("$name", (backend) => {
  it("a new reader sees rows committed without a notification at once", async () => {
    // A long poll: only a read of its own gets the new reader its chunk in time.
    const store = new PostgresStreamStore(backend.client(), { ...tables.stream, pollIntervalMs: 5_000 });
    const id = uid("quiet");
    try {
      await store.create(id);
      await store.append(id, "a");
      await store.append(id, "b");
      // A reader waits at the end: this process knows the stream up to seq 2.
      const first: unknown[] = [];
      const waiting = (async () => {
        for await (const chunk of store.readFrom(id, 0)) first.push(chunk);
      })();
      await sleep(300);
      expect(first).toHaveLength(2);
      await writeQuietly(id, 3, "c");
      const started = performance.now();
      const later: unknown[] = [];
      for await (const chunk of store.readFrom(id, 2)) {
        later.push(chunk);
        break;
      }
      expect(later).toEqual([{ seq: 3, data: "c" }]);
      expect(performance.now() - started).toBeLessThan(900);
      await store.complete(id);
      await waiting;
      expect(first).toHaveLength(3);
    } finally {
      await store.close();
    }
  }, 20_000);
});
