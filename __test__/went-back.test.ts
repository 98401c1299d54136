// A stream whose chunk count went back: the database lost acknowledged writes (a failover
// to an asynchronous standby keeps the status row, with a smaller count), or the stream
// was re-created. A producer is told so (the original's tables keep no generation to tell
// the two apart: both are named); a reader ends with STREAM_WENT_BACK instead of waiting
// forever for chunks that will never come.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, eventually, freshSchema, rejection, uid } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

/** What an asynchronous failover does to a stream: its last chunks gone, the same row. */
async function loseWrites(id: string, keep: number) {
  await admin.query(`DELETE FROM ${tables.stream.chunksTable} WHERE id = $1 AND seq > $2`, [id, keep]);
  await admin.query(`UPDATE ${tables.stream.statusTable} SET total_chunks = $2 WHERE id = $1`, [id, keep]);
}

const modes = [
  {
    name: "connection string (Rust pool)",
    make: () => ({ client: DATABASE_URL as string | pg.Pool, end: async () => {} }),
  },
  {
    name: "pg.Pool",
    make: () => {
      const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
      return { client: pool as string | pg.Pool, end: () => pool.end() };
    },
  },
];

describe.each(modes)("a stream whose count went back ($name)", ({ make }) => {
  it("the producer is told the database lost acknowledged writes", async () => {
    const { client, end } = make();
    const store = new PostgresStreamStore(client, tables.stream);
    try {
      const id = uid();
      await store.create(id);
      for (let i = 1; i <= 5; i++) await store.append(id, `c${i}`);
      await loseWrites(id, 3);
      const err = await rejection(store.append(id, "c6"));
      expect(err).toMatchObject({ code: "STREAM_NOT_ACTIVE", retryable: false });
      expect(err.message).toMatch(/^Stream ".*" not found or not active \(/);
      expect(err.message).toContain("went back from 5 to 3");
      expect(err.message).toContain("lost writes it had acknowledged");
      // And it stays fenced, with the same reason.
      expect((await rejection(store.append(id, "c6"))).message).toBe(err.message);
    } finally {
      await store.close();
      await end();
    }
  });

  it("the producer is told the stream was re-created (another text where it wrote)", async () => {
    const { client, end } = make();
    const store = new PostgresStreamStore(client, tables.stream);
    const other = new PostgresStreamStore(DATABASE_URL, tables.stream);
    try {
      const id = uid();
      await store.create(id);
      for (let i = 1; i <= 5; i++) await store.append(id, `c${i}`);
      await admin.query(`DELETE FROM ${tables.stream.statusTable} WHERE id = $1`, [id]);
      await other.create(id);
      for (let i = 1; i <= 6; i++) await other.append(id, `new ${i}`);
      const err = await rejection(store.append(id, "c6"));
      expect(err).toMatchObject({ code: "STREAM_NOT_ACTIVE" });
      expect(err.message).toBe(
        `Stream "${id}" not found or not active (it was re-created since this store wrote to it)`,
      );
    } finally {
      await other.close();
      await store.close();
      await end();
    }
  });

  it("a waiting reader ends with STREAM_WENT_BACK, not waiting forever", async () => {
    const { client, end } = make();
    const store = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 200 });
    try {
      const id = uid();
      await store.create(id);
      for (let i = 1; i <= 5; i++) await store.append(id, `c${i}`);
      const got: string[] = [];
      const reading = (async () => {
        for await (const { data } of store.readFrom(id, 0)) got.push(data);
      })();
      reading.catch(() => {});
      while (got.length < 5) await new Promise((resolve) => setTimeout(resolve, 10));
      await loseWrites(id, 3);
      const started = Date.now();
      const timeout = new Promise((resolve) => setTimeout(() => resolve("still waiting"), 10_000));
      const err = await Promise.race([
        reading.then(
          () => "ended without an error",
          (e) => e,
        ),
        timeout,
      ]);
      expect(err).toMatchObject({ code: "STREAM_WENT_BACK", retryable: false });
      expect((err as Error).message).toContain("lost writes it had acknowledged");
      expect(Date.now() - started).toBeLessThan(8_000);
      expect(got).toEqual(["c1", "c2", "c3", "c4", "c5"]);
    } finally {
      await store.close();
      await end();
    }
  });

  it("a reader that waited while its own store appended (fed, with a pg client) ends with STREAM_WENT_BACK too", async () => {
    const { client, end } = make();
    const store = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 200 });
    try {
      const id = uid();
      await store.create(id);
      const got: string[] = [];
      const reading = (async () => {
        for await (const { data } of store.readFrom(id, 0)) got.push(data);
      })();
      reading.catch(() => {});
      await eventually(async () => store.stats().readersWaiting === 1);
      for (let i = 1; i <= 5; i++) await store.append(id, `c${i}`);
      while (got.length < 5) await new Promise((resolve) => setTimeout(resolve, 10));
      await loseWrites(id, 3);
      const timeout = new Promise((resolve) => setTimeout(() => resolve("still waiting"), 10_000));
      const err = await Promise.race([
        reading.then(
          () => "ended without an error",
          (e) => e,
        ),
        timeout,
      ]);
      expect(err).toMatchObject({ code: "STREAM_WENT_BACK", retryable: false });
      expect(got).toEqual(["c1", "c2", "c3", "c4", "c5"]);
    } finally {
      await store.close();
      await end();
    }
  });
});
