// TTL and cleanup, run over every backend, each suite in a schema of its own (cleanup
// removes whatever has expired in its tables).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore, type PostgresClient } from "../index.js";
import { adminPool, backends, collect, freshSchema, uid } from "./helpers.js";

const admin = adminPool();
afterAll(() => admin.end());

describe.each(backends)("cleanup over $name", (backend) => {
  let client: string | PostgresClient;
  let closeClient: () => Promise<void>;
  let tables: Awaited<ReturnType<typeof freshSchema>>;

  beforeAll(async () => {
    ({ client, close: closeClient } = await backend.make());
    tables = await freshSchema(admin);
  });

  afterAll(async () => {
    await closeClient();
    await tables.drop();
  });

  const count = async (table: string, id: string, column = "id") =>
    (await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${column} = $1`, [id])).rows[0].n as number;

  it("removes expired finished streams with every chunk, and keeps the rest", async () => {
    const store = new PostgresStreamStore(client, { ...tables.stream, ttlMs: 0 });
    const keep = new PostgresStreamStore(client, { ...tables.stream, ttlMs: 60_000 });
    const ids = { done: uid(), stopped: uid(), failed: uid(), active: uid(), fresh: uid() };
    for (const id of Object.values(ids)) {
      await store.create(id);
      await store.append(id, "a");
      await store.append(id, "b");
    }
    await store.complete(ids.done);
    await store.stop(ids.stopped);
    await store.fail(ids.failed, "x");
    await keep.complete(ids.fresh); // finished now, ttl 60 s: not yet expired
    await new Promise((r) => setTimeout(r, 5));

    expect(await store.cleanup()).toBe(3);
    for (const id of [ids.done, ids.stopped, ids.failed]) {
      expect(await store.getStatus(id)).toBeNull();
      expect(await count(tables.stream.chunksTable, id)).toBe(0);
      expect(await collect(store.readFrom(id, 0))).toEqual([]);
    }
    // An active stream is kept although its ttl passed: its writer may still be going.
    expect((await store.getStatus(ids.active))?.state).toBe("active");
    expect(await count(tables.stream.chunksTable, ids.active)).toBe(2);
    expect((await store.getStatus(ids.fresh))?.state).toBe("done");
    expect(await count(tables.stream.chunksTable, ids.fresh)).toBe(2);
    expect(await store.cleanup()).toBe(0);
    await store.close();
    await keep.close();
  });

  it("counts a stream's ttl from when it finished, not from when it was created", async () => {
    const store = new PostgresStreamStore(client, { ...tables.stream, ttlMs: 60_000 });
    const id = uid();
    await store.create(id);
    // Created long ago (as if it streamed for an hour), finished just now.
    await admin.query(`UPDATE ${tables.stream.statusTable} SET expires_at = $2 WHERE id = $1`, [id, Date.now() - 3_600_000]);
    await store.complete(id);
    await store.cleanup();
    expect((await store.getStatus(id))?.state).toBe("done");
    await store.close();
  });

  it("removes an active stream whose writer went silent for ttlMs + staleAfterMs", async () => {
    const store = new PostgresStreamStore(client, { ...tables.stream, ttlMs: 1000, staleAfterMs: 5000 });
    const stale = uid();
    const quiet = uid();
    for (const id of [stale, quiet]) {
      await store.create(id);
      await store.append(id, "a");
    }
    // Last append 10 s ago (expiry = then + 1 s) vs 3 s ago.
    await admin.query(`UPDATE ${tables.stream.statusTable} SET expires_at = $2 WHERE id = $1`, [stale, Date.now() - 9000]);
    await admin.query(`UPDATE ${tables.stream.statusTable} SET expires_at = $2 WHERE id = $1`, [quiet, Date.now() - 2000]);
    expect(await store.cleanup()).toBe(1);
    expect(await store.getStatus(stale)).toBeNull();
    expect(await count(tables.stream.chunksTable, stale)).toBe(0);
    expect((await store.getStatus(quiet))?.state).toBe("active");
    // An append pushes the expiry forward, so a live stream is never taken for stale.
    await store.append(quiet, "b");
    const { rows } = await admin.query(`SELECT expires_at FROM ${tables.stream.statusTable} WHERE id = $1`, [quiet]);
    expect(Number(rows[0].expires_at)).toBeGreaterThan(Date.now());
    await store.close();
  });

  it("cleans up 2,000 expired streams in one call", async () => {
    const store = new PostgresStreamStore(client, tables.stream);
    const prefix = uid("bulk");
    await admin.query(
      `INSERT INTO ${tables.stream.statusTable} (id, state, total_chunks, expires_at)
       SELECT $1 || g, 'done', 3, 1 FROM generate_series(1, 2000) g`,
      [prefix],
    );
    await admin.query(
      `INSERT INTO ${tables.stream.chunksTable} (id, seq, data)
       SELECT $1 || g, s, 'x' FROM generate_series(1, 2000) g, generate_series(1, 3) s`,
      [prefix],
    );
    expect(await store.cleanup()).toBeGreaterThanOrEqual(2000);
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${tables.stream.chunksTable} WHERE id LIKE $1`, [`${prefix}%`]);
    expect(rows[0].n).toBe(0);
    await store.close();
  });

  it("removes expired conversations only", async () => {
    const store = new PostgresConversationStore(client, tables.conversation);
    const old = uid();
    const live = uid();
    await store.saveJSON(old, "{}");
    await store.saveJSON(live, "{}");
    await admin.query(`UPDATE ${tables.conversation.table} SET expires_at = $2 WHERE session_id = $1`, [old, Date.now() - 1]);
    expect(await store.cleanup()).toBe(1);
    expect(await count(tables.conversation.table, old, "session_id")).toBe(0);
    expect(await store.loadJSON(live)).toBe("{}");
    await store.close();
  });
});
