// Readers cost the database (almost) nothing: a reader at the end of a stream takes an
// appended chunk from memory (appends in this process, chunks carried in other processes'
// NOTIFYs), and readers at one cursor share one fetch when they must read the database.
// Every test checks both that each reader gets every chunk exactly once, in order, and
// how many statements the readers cost, counted by the pool (`stats().statementsSent`) or
// by the client the store was given.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, collect, eventually, freshSchema, uid, urlWithApp } from "./helpers.js";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

const expected = (n: number, text = (i: number) => `chunk ${i}`) => Array.from({ length: n }, (_, i) => ({ seq: i + 1, data: text(i + 1) }));

/** A client that counts the page reads (`readFrom`'s statement) it is asked to run. */
function countingClient() {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
  const counted = {
    reads: 0,
    query(text: string, params?: unknown[]) {
      if (text.includes("UNION ALL")) counted.reads++;
      return pool.query(text, params);
    },
    end: () => pool.end(),
  };
  return counted;
}

async function listeners(app: string) {
  const { rows } = await admin.query("SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query = 'LISTEN aibind_stream_writes'", [app]);
  return rows.map((r) => r.pid as number);
}

/** Appends `count` chunks from another process (its own store), `text(i)` each, `gapMs` apart, then completes. */
async function writeFromAnotherProcess(id: string, count: number, text: string, gapMs: number) {
  const script = `
    import { PostgresStreamStore } from ${JSON.stringify(`${root}index.js`)};
    const store = new PostgresStreamStore(process.env.DATABASE_URL, ${JSON.stringify(tables.stream)});
    const text = ${text};
    for (let i = 1; i <= ${count}; i++) {
      await store.append(${JSON.stringify(id)}, text(i));
      await new Promise((resolve) => setTimeout(resolve, ${gapMs}));
    }
    await store.complete(${JSON.stringify(id)});
    await store.close();
  `;
  await run(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, DATABASE_URL }, timeout: 30_000 });
}

describe("readers at the end of a stream", () => {
  it("connection string: 40 readers in the writer's process take every chunk from memory", async () => {
    const store = new PostgresStreamStore(urlWithApp(`fan_${uid().slice(2, 12)}`), { ...tables.stream, pollIntervalMs: 5_000 });
    const id = uid("fan");
    await store.create(id);
    const readers = Array.from({ length: 40 }, () => collect(store.readFrom(id, 0)));
    await eventually(async () => store.stats().readersWaiting === 40);
    const before = store.stats();
    for (let i = 1; i <= 100; i++) {
      await store.append(id, `chunk ${i}`);
      if (i % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await store.complete(id);
    for (const got of await Promise.all(readers)) expect(got).toEqual(expected(100));
    const after = store.stats();
    // The writer's own: 100 appends (fewer when combined), a complete, the notifications.
    const writer = 101 + (after.notificationsSent! - before.notificationsSent!);
    const readersCost = after.statementsSent! - before.statementsSent! - writer;
    // Each reader reading for itself: 40 x 100 at the least. Shared: none but a check or two.
    expect(readersCost).toBeLessThanOrEqual(10);
    await store.close();
  }, 30_000);

  it("JS client: 40 readers in the writer's process take every chunk from memory", async () => {
    const client = countingClient();
    const store = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 60_000 });
    const id = uid("fan-js");
    await store.create(id);
    const readers = Array.from({ length: 40 }, () => collect(store.readFrom(id, 0)));
    await eventually(async () => client.reads >= 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Opened together, they share their first read too.
    expect(client.reads).toBeLessThanOrEqual(3);
    const before = client.reads;
    for (let i = 1; i <= 100; i++) await store.append(id, `chunk ${i}`);
    await store.complete(id);
    for (const got of await Promise.all(readers)) expect(got).toEqual(expected(100));
    expect(client.reads - before).toBeLessThanOrEqual(2);
    await store.close();
    await client.end();
  }, 30_000);

  it("readers at one cursor share one fetch when a write came without its text", async () => {
    const app = `share_${uid().slice(2, 12)}`;
    const store = new PostgresStreamStore(urlWithApp(app), { ...tables.stream, pollIntervalMs: 60_000 });
    const id = uid("share");
    await store.create(id);
    const readers = Array.from({ length: 30 }, () => collect(store.readFrom(id, 0)));
    await eventually(async () => store.stats().readersWaiting === 30 && store.stats().listener === "confirmed");
    const before = store.stats().statementsSent!;
    // A writer that does not carry chunks (the original package, an older version): its
    // rows by hand, then a NOTIFY that names the stream only.
    const { statusTable: status, chunksTable: chunks } = tables.stream;
    await admin.query(`UPDATE ${status} SET total_chunks = 1 WHERE id = $1`, [id]);
    await admin.query(`INSERT INTO ${chunks} (id, seq, data) VALUES ($1, 1, 'by hand')`, [id]);
    await admin.query("SELECT pg_notify('aibind_stream_writes', $1)", [JSON.stringify({ o: "elsewhere", s: [[status, id]] })]);
    await store.complete(id);
    for (const got of await Promise.all(readers)) expect(got).toEqual([{ seq: 1, data: "by hand" }]);
    // One fetch for all 30 (two if a reader woke after it landed), and the complete.
    expect(store.stats().statementsSent! - before).toBeLessThanOrEqual(4);
    await store.close();
  }, 30_000);
});

describe("readers in another process than the writer", () => {
  it("chunks carried in NOTIFY reach 30 readers with no query; large ones and a lost listener fall back to shared fetches", async () => {
    const app = `across_${uid().slice(2, 12)}`;
    const store = new PostgresStreamStore(urlWithApp(app), { ...tables.stream, pollIntervalMs: 60_000 });
    const id = uid("across");
    await store.create(id);
    const big = (i: number) => (i % 10 === 0 ? `big ${i} ${"x".repeat(5_000)}` : `chunk ${i}`);
    const readers = Array.from({ length: 30 }, () => collect(store.readFrom(id, 0)));
    await eventually(async () => store.stats().readersWaiting === 30 && store.stats().listener === "confirmed");
    const before = store.stats().statementsSent!;
    const writing = writeFromAnotherProcess(id, 60, `(i) => (i % 10 === 0 ? "big " + i + " " + "x".repeat(5000) : "chunk " + i)`, 15);
    // Midway, the listener's connection is killed: it comes back, and every reader
    // catches up from its own cursor.
    await eventually(async () => (await admin.query(`SELECT total_chunks FROM ${tables.stream.statusTable} WHERE id = $1`, [id])).rows[0].total_chunks >= 25);
    const [pid] = await listeners(app);
    await admin.query("SELECT pg_terminate_backend($1)", [pid]);
    await writing;
    for (const got of await Promise.all(readers)) expect(got).toEqual(expected(60, big));
    const readersCost = store.stats().statementsSent! - before;
    // Reading for themselves: 30 readers x 60 chunks. Here: a shared fetch per large chunk,
    // a few after the listener came back, its probes.
    expect(readersCost).toBeLessThan(60);
    await store.close();
  }, 60_000);
});

describe("synchronousCommit: false", () => {
  for (const writerKind of ["connection string", "pg.Pool"] as const) {
    it(`${writerKind}: appends commit, announce themselves in their own statement, and reach another pool's readers`, async () => {
      const app = `relaxed_${uid().slice(2, 12)}`;
      const readers = new PostgresStreamStore(urlWithApp(app), { ...tables.stream, pollIntervalMs: 60_000 });
      const pool = writerKind === "pg.Pool" ? new pg.Pool({ connectionString: DATABASE_URL, max: 4 }) : undefined;
      const writer = new PostgresStreamStore(pool ?? urlWithApp(`${app}_w`), { ...tables.stream, synchronousCommit: false });
      const id = uid("relaxed");
      await writer.create(id);
      const reading = Array.from({ length: 5 }, () => collect(readers.readFrom(id, 0)));
      await eventually(async () => readers.stats().readersWaiting === 5 && readers.stats().listener === "confirmed");
      const before = writer.stats().notificationsSent ?? 0;
      for (let i = 1; i <= 50; i++) await writer.append(id, `chunk ${i}`);
      // At once: the Rust pool combines these, and announces the combined ones apart.
      const more = Array.from({ length: 50 }, (_, i) => writer.append(id, `chunk ${i + 51}`));
      expect(await Promise.all(more)).toEqual(Array.from({ length: 50 }, (_, i) => i + 51));
      await writer.complete(id);
      for (const got of await Promise.all(reading)) expect(got).toEqual(expected(100));
      const { rows } = await admin.query(`SELECT count(*)::int AS n, max(seq) AS top FROM ${tables.stream.chunksTable} WHERE id = $1`, [id]);
      expect(rows[0]).toEqual({ n: 100, top: 100 });
      if (writerKind === "connection string") {
        // The 50 awaited appends notified in their own statements.
        expect((writer.stats().notificationsSent ?? 0) - before).toBeLessThan(50);
      }
      await writer.close();
      await readers.close();
      await pool?.end();
    }, 30_000);
  }
});
