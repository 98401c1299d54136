// The ConversationStore contract (docs/contract.md), run over every backend. ChatHistory comes
// from the stand-in @aibind/core in __test__/fixtures.
import { ChatHistory } from "@aibind/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, type PostgresClient } from "../index.js";
import { adminPool, backends, freshSchema, rejection, uid } from "./helpers.js";

const admin = adminPool();
afterAll(() => admin.end());

describe.each(backends)("PostgresConversationStore over $name", (backend) => {
  let client: string | PostgresClient;
  let closeClient: () => Promise<void>;
  let tables: Awaited<ReturnType<typeof freshSchema>>;
  let store: PostgresConversationStore;

  beforeAll(async () => {
    ({ client, close: closeClient } = await backend.make());
    tables = await freshSchema(admin);
    store = new PostgresConversationStore(client, tables.conversation);
  });

  afterAll(async () => {
    await store.close();
    await closeClient();
    await tables.drop();
  });

  const row = async (id: string) =>
    (await admin.query(`SELECT * FROM ${tables.conversation.table} WHERE session_id = $1`, [id])).rows[0];

  it("loads a new empty ChatHistory for an unknown session", async () => {
    const chat = await store.load(uid());
    expect(chat).toBeInstanceOf(ChatHistory);
    expect(chat.messages).toEqual([]);
  });

  it("saves chat.toJSON() with expiry now + ttlMs and loads it back as a ChatHistory", async () => {
    const id = uid();
    const chat = new ChatHistory([{ role: "user", content: "héllo 👋" }]).append({ role: "assistant", content: "hi" });
    const before = Date.now();
    await store.save(id, chat);
    const stored = await row(id);
    expect(stored.data).toBe(chat.toJSON());
    expect(Number(stored.expires_at)).toBeGreaterThanOrEqual(before + 1_800_000);
    expect(Number(stored.expires_at)).toBeLessThanOrEqual(Date.now() + 1_800_000);
    const loaded = await store.load(id);
    expect(loaded).toBeInstanceOf(ChatHistory);
    expect(loaded.messages).toEqual(chat.messages);
  });

  it("overwrites on save (upsert) and refreshes the expiry", async () => {
    const id = uid();
    await store.save(id, new ChatHistory([{ role: "user", content: "one" }]));
    await admin.query(`UPDATE ${tables.conversation.table} SET expires_at = $2 WHERE session_id = $1`, [id, Date.now() + 1000]);
    await store.save(id, new ChatHistory([{ role: "user", content: "two" }]));
    expect((await store.load(id)).messages).toEqual([{ role: "user", content: "two" }]);
    expect(Number((await row(id)).expires_at)).toBeGreaterThan(Date.now() + 1_000_000);
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${tables.conversation.table} WHERE session_id = $1`, [id]);
    expect(rows[0].n).toBe(1);
  });

  it("treats an expired row as missing", async () => {
    const id = uid();
    await store.save(id, new ChatHistory([{ role: "user", content: "old" }]));
    await admin.query(`UPDATE ${tables.conversation.table} SET expires_at = $2 WHERE session_id = $1`, [id, Date.now() - 1]);
    expect((await store.load(id)).messages).toEqual([]);
    expect(await store.loadJSON(id)).toBeNull();
  });

  it("deletes a session, and deleting a missing one resolves", async () => {
    const id = uid();
    await store.save(id, new ChatHistory([{ role: "user", content: "bye" }]));
    await store.delete(id);
    expect(await row(id)).toBeUndefined();
    expect((await store.load(id)).messages).toEqual([]);
    await store.delete(uid());
  });

  it("stores and returns JSON text as it is with saveJSON / loadJSON", async () => {
    const id = uid();
    const json = JSON.stringify({ anything: ["my", "own", "shape"], n: 1 });
    await store.saveJSON(id, json);
    expect(await store.loadJSON(id)).toBe(json);
    expect(await store.loadJSON(uid())).toBeNull();
  });

  it("keeps a large history exactly", async () => {
    const id = uid();
    const messages = Array.from({ length: 2000 }, (_, i) => ({ role: i % 2 ? "assistant" : "user", content: `message ${i} ✓ ${"z".repeat(200)}` }));
    await store.save(id, new ChatHistory(messages));
    expect((await store.load(id)).messages).toEqual(messages);
  });

  it("rejects bad input with INVALID_ARGUMENT and writes nothing", async () => {
    const id = uid();
    const cases: Array<[string, () => Promise<unknown>]> = [
      ["chat without toJSON", () => store.save(id, {} as unknown as ChatHistory)],
      ["null chat", () => store.save(id, null as unknown as ChatHistory)],
      ["numeric session id", () => store.load(5 as unknown as string)],
      ["empty session id", () => store.saveJSON("", "{}")],
      ["NUL in JSON", () => store.saveJSON(id, '{"a":"\u0000"}')],
      ["non-string JSON", () => store.saveJSON(id, { a: 1 } as unknown as string)],
    ];
    for (const [name, call] of cases) {
      const err = await rejection(call());
      expect(err.code, name).toBe("INVALID_ARGUMENT");
    }
    expect(await row(id)).toBeUndefined();
  });
});
