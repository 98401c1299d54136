// The database goes away and comes back. A PostgreSQL of this file's own is really
// stopped (fast shutdown: every session is ended) while a reader tails a stream, and
// started again on the same port and data. Appends during the outage reject with a
// retryable error; afterwards the same store works without being recreated, the reader
// carries on from its cursor (every chunk exactly once), and the listener reconnects.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore, type PostgresClient } from "../index.js";
import { startThrowaway, type Throwaway } from "../scripts/throwaway-postgres.mjs";
import { ddl, eventually, rejection, uid } from "./helpers.js";

let server: Throwaway;
const stream = { chunksTable: "aibind_stream_chunks", statusTable: "aibind_stream_status" };

async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: server.url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  server = await startThrowaway();
  await admin((c) => c.query(ddl({ ...stream, conversationsTable: "aibind_conversations" })));
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

const listeners = () =>
  admin(async (c) => (await c.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'LISTEN aibind_stream_writes'")).rows[0].n as number);

const clients: { name: string; native: boolean; make(): { client: string | PostgresClient; close(): Promise<void> } }[] = [
  { name: "connection string (Rust pool)", native: true, make: () => ({ client: server.url, close: async () => {} }) },
  {
    name: "pg.Pool",
    native: false,
    make: () => {
      const pool = new pg.Pool({ connectionString: server.url, max: 4 });
      pool.on("error", () => {}); // idle clients lose their connection in the outage, as an app must expect
      return { client: pool, close: () => pool.end() };
    },
  },
];

describe.each(clients)("a restart under $name", ({ native, make }) => {
  it("fails appends clearly while down, then the same stores and the tailing reader carry on exactly once", async () => {
    const { client, close } = make();
    const store = new PostgresStreamStore(client, { ...stream, pollIntervalMs: 50, queryTimeoutMs: 5_000 });
    const conversations = new PostgresConversationStore(client, { queryTimeoutMs: 5_000 });
    const id = uid("restart");
    await store.create(id);
    for (let i = 1; i <= 3; i++) await store.append(id, `before ${i}`);
    const got: { seq: number; data: string }[] = [];
    const reading = (async () => {
      for await (const chunk of store.readFrom(id, 0)) got.push(chunk);
    })();
    await eventually(async () => got.length === 3);
    if (native) await eventually(async () => (await listeners()) === 1);

    await server.halt();
    const down = await rejection(store.append(id, "lost"));
    expect(down.code).toBe("CONNECTION_ERROR");
    expect(down.retryable).toBe(true);
    const readDown = await rejection(conversations.loadJSON("s"));
    expect(readDown.code).toBe("CONNECTION_ERROR");

    await server.resume();
    // The same stores, not recreated: the first call after the restart succeeds.
    expect(await store.append(id, "after 4")).toBe(4);
    await conversations.saveJSON("s", '{"messages":[]}');
    expect(await conversations.loadJSON("s")).toBe('{"messages":[]}');
    for (let i = 5; i <= 6; i++) expect(await store.append(id, `after ${i}`)).toBe(i);
    await store.complete(id);
    await reading;
    expect(got).toEqual([
      { seq: 1, data: "before 1" },
      { seq: 2, data: "before 2" },
      { seq: 3, data: "before 3" },
      { seq: 4, data: "after 4" },
      { seq: 5, data: "after 5" },
      { seq: 6, data: "after 6" },
    ]);
    if (native) await eventually(async () => (await listeners()) === 1, 15_000);
    await store.close();
    await conversations.close();
    await close();
  }, 60_000);
});

describe("readers through a long outage", () => {
  it("with a JS client that polls: a reader throws a retryable error once retryReadsForMs has passed", async () => {
    // A client that cannot LISTEN (as Neon's HTTP driver): its waiting readers poll, so
    // they meet the outage. (A pg or postgres.js client's readers wait in the shared
    // check, as a connection string's do below.)
    const { client: pool, close } = clients[1].make();
    const client: PostgresClient = { query: (sql, params) => (pool as PostgresClient).query(sql, params) };
    const store = new PostgresStreamStore(client, { ...stream, pollIntervalMs: 50, retryReadsForMs: 300, queryTimeoutMs: 2_000 });
    const id = uid("gone");
    await store.create(id);
    await store.append(id, "one");
    const seen: number[] = [];
    const reading = (async () => {
      for await (const chunk of store.readFrom(id, 0)) seen.push(chunk.seq);
    })();
    await eventually(async () => seen.length === 1);
    await server.halt();
    try {
      const started = Date.now();
      const err = await rejection(reading);
      expect(err.code).toBe("CONNECTION_ERROR");
      expect(err.retryable).toBe(true);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(seen).toEqual([1]);
    } finally {
      await server.resume();
    }
    await store.close();
    await close();
  }, 60_000);

  it("with a connection string: a waiting reader keeps waiting through the outage, then carries on", async () => {
    const store = new PostgresStreamStore(server.url, { ...stream, pollIntervalMs: 50, retryReadsForMs: 300 });
    const id = uid("waits");
    await store.create(id);
    await store.append(id, "one");
    const seen: number[] = [];
    let failed: unknown;
    const reading = (async () => {
      for await (const chunk of store.readFrom(id, 0)) seen.push(chunk.seq);
    })().catch((err) => {
      failed = err;
    });
    await eventually(async () => seen.length === 1);
    await server.halt();
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // over three times retryReadsForMs
    await server.resume();
    expect(failed).toBeUndefined();
    expect(await store.append(id, "two")).toBe(2);
    await store.complete(id);
    await reading;
    expect(failed).toBeUndefined();
    expect(seen).toEqual([1, 2]);
    await store.close();
  }, 60_000);
});
