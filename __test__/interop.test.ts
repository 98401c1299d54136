// Same tables, same meaning: rows written through one backend are read through every
// other, rows laid down by plain SQL in the documented schema (as the original package
// writes them) are read by the stores, and the default table names work.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore, type PostgresClient } from "../index.js";
import { adminPool, backends, collect, freshSchema, originalConversationDdl, originalStreamDdl, uid } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
const opened: Array<{ name: string; client: string | PostgresClient; close(): Promise<void> }> = [];

beforeAll(async () => {
  tables = await freshSchema(admin);
  for (const backend of backends) opened.push({ name: backend.name, ...(await backend.make()) });
});

afterAll(async () => {
  for (const o of opened) await o.close();
  await tables.drop();
  await admin.end();
});

describe("interop", () => {
  it("reads through every backend what each backend wrote", async () => {
    const stores = opened.map((o) => ({ name: o.name, store: new PostgresStreamStore(o.client, tables.stream) }));
    for (const writer of stores) {
      const id = uid();
      await writer.store.create(id);
      await writer.store.append(id, `from ${writer.name}`);
      await writer.store.append(id, "✓ second");
      await writer.store.fail(id, "because");
      for (const reader of stores) {
        expect(await reader.store.getStatus(id), `${writer.name} -> ${reader.name}`).toEqual({
          state: "error",
          error: "because",
          totalChunks: 2,
        });
        expect(await collect(reader.store.readFrom(id, 0))).toEqual([
          { seq: 1, data: `from ${writer.name}` },
          { seq: 2, data: "✓ second" },
        ]);
      }
    }
    // Appends through different backends to one stream interleave into one gapless sequence.
    const id = uid();
    await stores[0].store.create(id);
    const seqs = await Promise.all(stores.flatMap((s) => [1, 2, 3].map((n) => s.store.append(id, `${s.name} ${n}`))));
    expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: stores.length * 3 }, (_, i) => i + 1));
    for (const s of stores) await s.store.close();
  });

  it("reads streams and conversations laid down by plain SQL in the documented schema", async () => {
    const id = uid();
    const expires = Date.now() + 60_000;
    await admin.query(`INSERT INTO ${tables.stream.statusTable} (id, state, error, total_chunks, expires_at) VALUES ($1, 'active', NULL, 2, $2)`, [id, expires]);
    await admin.query(`INSERT INTO ${tables.stream.chunksTable} (id, seq, data) VALUES ($1, 1, 'one'), ($1, 2, 'two')`, [id]);
    const session = uid();
    await admin.query(`INSERT INTO ${tables.conversation.table} (session_id, data, expires_at) VALUES ($1, $2, $3)`, [
      session,
      JSON.stringify({ version: 1, messages: [{ role: "user", content: "from SQL" }] }),
      expires,
    ]);
    for (const o of opened) {
      const store = new PostgresStreamStore(o.client, tables.stream);
      expect(await store.getStatus(id), o.name).toEqual({ state: "active", error: undefined, totalChunks: 2 });
      const iterator = store.readFrom(id, 0);
      expect((await iterator.next()).value).toEqual({ seq: 1, data: "one" });
      expect((await iterator.next()).value).toEqual({ seq: 2, data: "two" });
      await iterator.return(undefined);
      const conversations = new PostgresConversationStore(o.client, tables.conversation);
      expect((await conversations.load(session)).messages, o.name).toEqual([{ role: "user", content: "from SQL" }]);
      await store.close();
      await conversations.close();
    }
    // A stream the original created and this package appends to carries on from its seq.
    const store = new PostgresStreamStore(opened[0].client, tables.stream);
    expect(await store.append(id, "three")).toBe(3);
    await store.close();
  });

  it("works with the default table names", async () => {
    await admin.query(originalStreamDdl("aibind_stream_chunks", "aibind_stream_status") + originalConversationDdl("aibind_conversations"));
    for (const o of opened) {
      const store = new PostgresStreamStore(o.client);
      const id = uid();
      await store.create(id);
      await store.append(id, "default tables");
      await store.complete(id);
      const { rows } = await admin.query("SELECT data FROM aibind_stream_chunks WHERE id = $1", [id]);
      expect(rows, o.name).toEqual([{ data: "default tables" }]);
      await admin.query("DELETE FROM aibind_stream_chunks WHERE id = $1", [id]);
      await admin.query("DELETE FROM aibind_stream_status WHERE id = $1", [id]);
      const conversations = new PostgresConversationStore(o.client);
      const session = uid();
      await conversations.saveJSON(session, "[]");
      expect((await admin.query("SELECT data FROM aibind_conversations WHERE session_id = $1", [session])).rows).toEqual([{ data: "[]" }]);
      await conversations.delete(session);
      await store.close();
      await conversations.close();
    }
  });

  it("folds unquoted table names to lower case, as the original's SQL does", async () => {
    const store = new PostgresStreamStore(opened[0].client, {
      chunksTable: `${tables.schema}.AIBIND_Stream_Chunks`,
      statusTable: `${tables.schema.toUpperCase()}.aibind_stream_STATUS`,
    });
    const id = uid();
    await store.create(id);
    expect(await store.append(id, "x")).toBe(1);
    await store.close();
  });
});
