// The fast paths keep the contract: appends the Rust pool combines into one
// statement, and the named statements pg clients get.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { adminPool, collect, DATABASE_URL, freshSchema, rejection, uid } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});

afterAll(async () => {
  await tables.drop();
  await admin.end();
});

describe("appends combined by the Rust pool", () => {
  it("keeps each stream's seqs gapless and in call order when many appends queue at once", async () => {
    // One connection: every append after the first queues and goes out combined.
    const store = new PostgresStreamStore(DATABASE_URL, { ...tables.stream, poolSize: 1 });
    const ids = Array.from({ length: 20 }, () => uid("comb"));
    for (const id of ids) await store.create(id);
    const calls = ids.flatMap((id) => Array.from({ length: 25 }, (_, i) => ({ id, data: `${id}:${i}` })));
    const seqs = await Promise.all(calls.map(({ id, data }) => store.append(id, data)));
    for (const id of ids) {
      const mine = calls.flatMap((c, n) => (c.id === id ? [{ seq: seqs[n], data: c.data }] : []));
      expect(mine.map((m) => m.seq)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
      await store.complete(id);
      expect(await collect(store.readFrom(id, 0))).toEqual(mine);
      expect((await store.getStatus(id))?.totalChunks).toBe(25);
    }
    await store.close();
  });

  it("rejects only the appends whose stream is not active", async () => {
    const store = new PostgresStreamStore(DATABASE_URL, { ...tables.stream, poolSize: 1 });
    const [live, stopped] = [uid("live"), uid("stopped")];
    const missing = uid("missing");
    await store.create(live);
    await store.create(stopped);
    await store.stop(stopped);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) => store.append([live, stopped, missing][i % 3], `c${i}`)),
    );
    const fulfilled = outcomes.flatMap((o, i) => (o.status === "fulfilled" ? [[i, o.value]] : []));
    expect(fulfilled).toEqual(Array.from({ length: 10 }, (_, n) => [n * 3, n + 1]));
    outcomes.forEach((o, i) => {
      if (i % 3 === 0) return;
      const id = i % 3 === 1 ? stopped : missing;
      expect(o).toMatchObject({ status: "rejected", reason: { code: "STREAM_NOT_ACTIVE", message: `Stream "${id}" not found or not active` } });
    });
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${tables.stream.chunksTable} WHERE id = ANY($1)`, [[stopped, missing]]);
    expect(rows[0].n).toBe(0);
    await store.close();
  });
});

describe("pg clients", () => {
  it("run the store's statements as named (prepared) statements", async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    const store = new PostgresStreamStore(client, tables.stream);
    const id = uid("named");
    await store.create(id);
    await store.append(id, "a");
    await store.append(id, "b");
    // (Not counting the NOTIFY that announces the appends to other processes, nor the
    // client's one look for Citus.)
    const { rows } = await client.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'aibind_%' AND statement NOT LIKE '%pg_notify%' AND statement NOT LIKE '%pg_extension%'");
    expect(rows[0].n).toBe(2); // create and append, each prepared once
    await client.end();
  });

  it("fall back to unnamed statements when the server forgets them (a pooler in transaction mode)", async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    const store = new PostgresStreamStore(client, tables.stream);
    const id = uid("forget");
    await store.create(id);
    expect(await store.append(id, "a")).toBe(1);
    // What PgBouncer in transaction mode does to a client: the next statement runs on a
    // server connection that never saw the prepared statement.
    await client.query("DEALLOCATE ALL");
    expect(await store.append(id, "b")).toBe(2);
    expect(await store.append(id, "c")).toBe(3);
    const { rows } = await client.query("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE statement NOT LIKE '%pg_notify%'");
    expect(rows[0].n).toBe(0);
    await store.complete(id);
    expect((await collect(store.readFrom(id, 0))).map((c) => c.data)).toEqual(["a", "b", "c"]);
    const err = await rejection(store.append(id, "d"));
    expect(err.code).toBe("STREAM_NOT_ACTIVE");
    await client.end();
  });
});
