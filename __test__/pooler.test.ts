// Behind a real PgBouncer (transaction and session mode, its default config: no
// ignore_startup_parameters), through a connection string with default options, a
// pg.Pool and postgres.js (prepare: false): every method, a burst from two processes, a
// tailing reader live through listenUrl and by polling.
import { ChatHistory } from "@aibind/core";
import pg from "pg";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore, migrate, wrapPostgresJs, type PostgresClient } from "../index.js";
import { startPgBouncer, type PgBouncer } from "../scripts/pgbouncer.mjs";
import { startWorker } from "./fixtures/workers.js";
import { createRequire } from "node:module";
import { DATABASE_URL, adminPool, collect, eventually, freshSchema, rejection, sleep, uid } from "./helpers.js";

const { NativeBackend } = createRequire(import.meta.url)("../binding.cjs");
const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
const bouncers: Record<string, PgBouncer> = {};
const modes = ["transaction", "session"] as const;

beforeAll(async () => {
  tables = await freshSchema(admin);
  for (const mode of modes) bouncers[mode] = await startPgBouncer({ target: DATABASE_URL, mode });
});

afterAll(async () => {
  for (const bouncer of Object.values(bouncers)) await bouncer.stop();
  await tables.drop();
  await admin.end();
});

const withApp = (url: string, app: string) => {
  const u = new URL(url);
  u.searchParams.set("application_name", app);
  return u.href;
};

const clients = [
  { name: "connection string", make: (url: string) => ({ client: url as string | PostgresClient, end: async () => {} }) },
  {
    name: "pg.Pool",
    make: (url: string) => {
      const pool = new pg.Pool({ connectionString: url, max: 5 });
      return { client: pool as string | PostgresClient, end: () => pool.end() };
    },
  },
  {
    name: "postgres.js (prepare: false)",
    make: (url: string) => {
      const sql = postgres(url, { max: 5, prepare: false, onnotice: () => {} });
      return { client: wrapPostgresJs(sql) as string | PostgresClient, end: () => sql.end() };
    },
  },
];

describe.each(modes)("behind PgBouncer in %s mode", (mode) => {
  describe.each(clients)("through $name", (kind) => {
    it("every method works", async () => {
      const { client, end } = kind.make(bouncers[mode].url);
      const names = { ...tables.stream, ...tables.conversation, conversationsTable: tables.conversation.table };
      await migrate(client, names); // idempotent: the tables exist
      const streams = new PostgresStreamStore(client, { ...tables.stream, ttlMs: 0, pollIntervalMs: 20 });
      const chats = new PostgresConversationStore(client, { ...tables.conversation, ttlMs: 60_000 });
      try {
        const id = uid("every");
        await streams.create(id);
        expect((await rejection(streams.create(id))).code).toBe("STREAM_EXISTS");
        const seqs = await Promise.all(Array.from({ length: 30 }, (_, i) => streams.append(id, `c${i}`)));
        // Gapless and unique; the Rust pool also keeps call order (a JS pool's connections race).
        expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
        if (typeof client === "string") expect(seqs).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
        const tail = collect(streams.readFrom(id, 25));
        await sleep(50);
        await streams.append(id, "late");
        await streams.complete(id);
        const tailed = await tail;
        expect(tailed.map((c) => c.seq)).toEqual([26, 27, 28, 29, 30, 31]);
        expect(tailed[5].data).toBe("late");
        expect(await streams.getStatus(id)).toEqual({ state: "done", error: undefined, totalChunks: 31 });
        const stopped = uid("stop");
        await streams.create(stopped);
        await streams.stop(stopped);
        const failed = uid("fail");
        await streams.create(failed);
        await streams.fail(failed, "boom");
        expect(await streams.getStatus(failed)).toMatchObject({ state: "error", error: "boom" });
        expect((await rejection(streams.append(stopped, "x"))).code).toBe("STREAM_NOT_ACTIVE");
        await sleep(5);
        expect(await streams.cleanup()).toBeGreaterThanOrEqual(3);
        expect(await streams.getStatus(id)).toBeNull();

        const session = uid("chat");
        await chats.save(session, new ChatHistory([{ role: "user", content: "héllo" }]));
        expect((await chats.load(session)).messages).toEqual([{ role: "user", content: "héllo" }]);
        await chats.saveJSON(session, '{"messages":[]}');
        expect(await chats.loadJSON(session)).toBe('{"messages":[]}');
        await chats.delete(session);
        expect(await chats.loadJSON(session)).toBeNull();
        expect(await chats.cleanup()).toBeGreaterThanOrEqual(0);
        if (typeof client === "string") {
          // Told apart without configuration: the pooler answered the startup itself.
          expect(streams.stats().pooler).toBe("transaction (detected)");
          expect(streams.stats().statementsSent).toBeGreaterThan(10);
          expect(streams.stats().size).toBeGreaterThan(0);
        } else {
          // A JS client's pool is its own. The tailing reader reads a stream appended
          // here, which needs no listener ("off"); one started hears its probe in session
          // mode, and in transaction mode never does.
          expect(streams.stats()).toMatchObject({ backend: "js-client", size: null });
          const listener = streams.stats().listener;
          expect(mode === "session" ? ["off", "connecting", "confirmed"] : ["off", "connecting", "deaf-polling"]).toContain(listener);
        }
      } finally {
        await streams.close();
        await chats.close();
        await end();
      }
    });
  });

  it("a burst of 200 appends from 2 processes through connection strings: seqs 1..200, each process's in call order", async () => {
    const id = uid("burst");
    const store = new PostgresStreamStore(bouncers[mode].url, tables.stream);
    await store.create(id);
    const job = (tag: string) => ({ options: tables.stream, append: { id, count: 100, tag } });
    const results = await Promise.all(["a", "b"].map((tag) => startWorker(bouncers[mode].url, job(tag)).done));
    for (const r of results) expect(r.errors).toEqual([]);
    const { rows } = await admin.query(`SELECT seq, data FROM ${tables.stream.chunksTable} WHERE id = $1 ORDER BY seq`, [id]);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    for (const tag of ["a", "b"]) {
      const mine = rows.filter((r) => r.data.startsWith(`${tag}:`)).map((r) => Number(r.data.split(":")[1]));
      expect(mine).toEqual(Array.from({ length: 100 }, (_, i) => i));
    }
    expect((await store.getStatus(id))?.totalChunks).toBe(200);
    await store.close();
  });
});

/** PgBouncer's clients with this application_name. */
async function bouncerClients(bouncer: PgBouncer, app: string) {
  const c = new pg.Client(bouncer.adminUrl);
  await c.connect();
  try {
    return (await c.query("SHOW CLIENTS")).rows.filter((r) => r.application_name === app).length;
  } finally {
    await c.end();
  }
}

const expectedChunks = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

describe("a tailing reader behind PgBouncer in transaction mode", () => {
  it("gets every chunk once, in order, live through listenUrl (a poll interval of a minute)", async () => {
    const id = uid("live");
    const url = bouncers.transaction.url;
    const reader = new PostgresStreamStore(url, { ...tables.stream, pollIntervalMs: 60_000, listenUrl: DATABASE_URL });
    await reader.create(id);
    const reading = collect(reader.readFrom(id, 0));
    await eventually(async () => reader.stats().listener === "confirmed");
    const writer = startWorker(url, { options: tables.stream, write: { ids: [id], count: 20, gapMs: 10 } });
    const started = Date.now();
    const got = await reading;
    expect((await writer.done).errors).toEqual([]);
    expect(got.map((c) => c.seq)).toEqual(expectedChunks(20));
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(reader.stats().notificationsReceived).toBeGreaterThan(0);
    await reader.close();
  });

  it("without listenUrl: the deaf listener is closed, and the reader gets every chunk once, in order, by polling", async () => {
    const id = uid("poll");
    const app = `deaf_${uid().slice(2, 10)}`;
    const url = withApp(bouncers.transaction.url, app);
    const reader = new PostgresStreamStore(url, { ...tables.stream, pollIntervalMs: 50 });
    await reader.create(id);
    const reading = collect(reader.readFrom(id, 0));
    await eventually(async () => reader.stats().listener === "deaf-polling", 8_000);
    // Its LISTEN connection is gone: what is left at PgBouncer is the pool's.
    await eventually(async () => (await bouncerClients(bouncers.transaction, app)) <= (reader.stats().size ?? 0));
    const writer = startWorker(url, { options: tables.stream, write: { ids: [id], count: 20, gapMs: 10 } });
    const got = await reading;
    expect((await writer.done).errors).toEqual([]);
    expect(got.map((c) => c.seq)).toEqual(expectedChunks(20));
    expect(reader.stats().listener).toBe("deaf-polling");
    await reader.close();
  });

  it("a startup parameter the pooler refuses fails at once, not retryable, and names the fix", async () => {
    const url = new URL(bouncers.transaction.url);
    url.searchParams.set("options", "-c statement_timeout=1000");
    const store = new PostgresStreamStore(url.href, tables.stream);
    const started = Date.now();
    const err = await rejection(store.getStatus("x"));
    expect(err.code).toBe("CONNECTION_ERROR");
    expect(err.retryable).toBe(false);
    expect(err.message).toContain("ignore_startup_parameters");
    expect(Date.now() - started).toBeLessThan(5_000);
    await store.close();
  });

  it("queryTimeoutMs reaches the server (SET LOCAL behind the pooler, SET once directly) and leaks to no other client", async () => {
    const check = (expected: string) =>
      `DO $$ BEGIN IF current_setting('statement_timeout') <> '${expected}' THEN ` +
      `RAISE EXCEPTION 'statement_timeout is %', current_setting('statement_timeout'); END IF; END $$`;
    for (const [url, pooler] of [
      [bouncers.transaction.url, "auto"],
      [bouncers.transaction.url, "transaction"],
      [bouncers.session.url, "session"],
      [DATABASE_URL, "auto"],
    ]) {
      const backend = NativeBackend.connect(url, { queryTimeoutMs: 1234, pooler });
      for (let i = 0; i < 3; i++) await backend.execute(check("1234ms"));
      await backend.close();
    }
    // Another client of the transaction pooler sees the server's default.
    const other = new pg.Client(bouncers.transaction.url);
    await other.connect();
    for (let i = 0; i < 5; i++) expect((await other.query("SHOW statement_timeout")).rows[0].statement_timeout).toBe("0");
    await other.end();
  });
});
