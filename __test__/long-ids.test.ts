// Ids too long to name in a NOTIFY payload (PostgreSQL refuses payloads of 8,000 bytes
// or more; JSON spells a control character in 6 bytes, so 700 bytes of U+0001 take 4,200
// bytes named): every call works on them, finishing included, and readers elsewhere
// still hear of the writes (as a wake-up of every reader, not by name).
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore, type PostgresClient } from "../index.js";
import { DATABASE_URL, adminPool, eventually, freshSchema, sleep, urlWithApp, uid } from "./helpers.js";

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

const pgPool = () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL });
  pools.push(pool);
  return pool;
};

const backends: Array<{ name: string; client(): string | PostgresClient }> = [
  { name: "connection string", client: () => urlWithApp(uid("ids")) },
  { name: "pg.Pool", client: pgPool },
];

const odd = (n: number) => "\u0001".repeat(n);

describe.each(backends)("$name: ids of many control characters", (backend) => {
  for (const synchronousCommit of [true, false]) {
    it(`create, append, read, complete (synchronousCommit: ${synchronousCommit})`, async () => {
      const writer = new PostgresStreamStore(backend.client(), { ...tables.stream, synchronousCommit });
      // A reader with a client and listener of its own, as in another process.
      const reader = new PostgresStreamStore(backend.client(), tables.stream);
      const id = odd(700) + uid();
      const other = uid("neighbour");
      try {
        await writer.create(id);
        await writer.create(other);
        const read: unknown[] = [];
        const reading = (async () => {
          for await (const chunk of reader.readFrom(id, 0)) read.push(chunk);
        })();
        await sleep(200); // it waits for the first chunk
        // A write that can be named, in the same batch of notifications, still goes.
        const [one] = await Promise.all([writer.append(id, "one"), writer.append(other, "x")]);
        expect(one).toBe(1);
        expect(await writer.append(id, "two")).toBe(2);
        await writer.complete(id);
        expect(await writer.getStatus(id)).toEqual({ state: "done", totalChunks: 2 });
        await reading;
        expect(read).toEqual([
          { seq: 1, data: "one" },
          { seq: 2, data: "two" },
        ]);
        const stop = odd(700) + uid();
        await writer.create(stop);
        const signal = reader.stopSignal(stop);
        await writer.stop(stop);
        await eventually(async () => signal.aborted, 5_000);
        await writer.fail(other, "gone");
        expect(await writer.getStatus(other)).toMatchObject({ state: "error" });
      } finally {
        await writer.close();
        await reader.close();
      }
    }, 20_000);
  }
});
