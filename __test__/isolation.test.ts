// No call waits on another stream's lock: a statement held up by a row locked elsewhere
// (a long transaction, a slow `cleanup()`) holds only its own connection. Calls on other
// streams go on, with default options, also once the pool has shrunk to one connection
// after a quiet spell (it grows without measuring through its busy connections first).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import postgres from "postgres";
import { PostgresStreamStore, wrapPostgresJs, type PostgresClient } from "../index.js";
import { DATABASE_URL, adminPool, freshSchema, lockRow, sleep, timed, uid, urlWithApp } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
const results: string[] = [];
afterAll(async () => {
  console.log(`[isolation] other streams' calls, slowest, while a row was locked: ${results.join("; ")}`);
  await tables.drop();
  await admin.end();
});

/** How long a row stays locked; the old code held every other call this long. */
const LOCKED_MS = 3_000;
/** What "went on" means here: far below LOCKED_MS, with room for a loaded machine. */
const WENT_ON_MS = 1_000;

const clients: { name: string; make(): { client: string | PostgresClient; close(): Promise<void> } }[] = [
  {
    // A pool of its own (its own application_name), as a fresh process has.
    name: "connection string",
    make: () => ({ client: urlWithApp(uid("iso")), close: async () => {} }),
  },
  {
    name: "pg.Pool",
    make: () => {
      const pool = new pg.Pool({ connectionString: DATABASE_URL });
      return { client: pool, close: () => pool.end() };
    },
  },
  {
    name: "postgres.js",
    make: () => {
      const sql = postgres(DATABASE_URL, { onnotice: () => {} });
      return { client: wrapPostgresJs(sql), close: () => sql.end() };
    },
  },
];

describe.concurrent.each(clients)("$name: a locked row holds only its own call", ({ name, make }) => {
  for (const blocked of ["complete", "append"] as const) {
    it(`${blocked}() waiting on a locked row: other streams' calls go on`, async () => {
      const { client, close } = make();
      const store = new PostgresStreamStore(client, tables.stream);
      try {
        const [a, b] = [uid("a"), uid("b")];
        await store.create(a);
        await store.create(b);
        await store.append(b, "b1");
        // Quiet for a second: the pool holds one connection, and whatever it measured
        // of the server when it opened is old.
        await sleep(800);
        const lock = await lockRow(admin, tables.stream.statusTable, a);
        let held: Promise<unknown>;
        try {
          held = blocked === "complete" ? store.complete(a) : store.append(a, "a1");
          held.catch(() => {});
          await sleep(150); // it is waiting on the lock now
          const reads = async () => {
            for await (const chunk of store.readFrom(b, 0)) return chunk;
          };
          const others = await Promise.all([
            timed(store.append(b, "b2")),
            timed(store.getStatus(b)),
            timed(reads()),
            timed(store.create(uid("c"))),
          ]);
          results.push(`${name}, ${blocked}: ${Math.max(...others.map((o) => o.ms))} ms`);
          for (const { ms, error } of others) {
            expect(error).toBeUndefined();
            expect(ms).toBeLessThan(WENT_ON_MS);
          }
          expect(others[0].value).toBe(2);
          expect(others[1].value).toMatchObject({ state: "active" });
          expect(others[2].value).toEqual({ seq: 1, data: "b1" });
          // Still held: the lock, not the pool, decides when it goes.
          const settled = await Promise.race([held.then(() => "done", () => "done"), sleep(200).then(() => "held")]);
          expect(settled).toBe("held");
        } finally {
          await sleep(Math.max(0, LOCKED_MS - 1_500));
          await lock.release();
        }
        await held;
        expect(await store.getStatus(a)).toMatchObject(
          blocked === "complete" ? { state: "done", totalChunks: 0 } : { state: "active", totalChunks: 1 },
        );
      } finally {
        await store.close();
        await close();
      }
    }, 30_000);
  }
});

it("connection string: also after the pool grew and shrank again", async () => {
  const store = new PostgresStreamStore(urlWithApp(uid("iso-shrunk")), { ...tables.stream, idleTimeoutMs: 300 });
  try {
    const [a, b] = [uid("a"), uid("b")];
    await store.create(a);
    await store.create(b);
    // Grown: many calls at once open more connections...
    await Promise.all(Array.from({ length: 40 }, () => store.getStatus(b)));
    // ...which close once idle: the pool is back to one connection, its measure old.
    await sleep(1_500);
    expect(store.stats().size).toBeLessThanOrEqual(1);
    const lock = await lockRow(admin, tables.stream.statusTable, a);
    let held: Promise<void> = Promise.resolve();
    try {
      held = store.complete(a);
      held.catch(() => {});
      await sleep(150);
      const others = await Promise.all([timed(store.append(b, "b1")), timed(store.getStatus(b)), timed(store.create(uid("c")))]);
      results.push(`connection string after shrinking: ${Math.max(...others.map((o) => o.ms))} ms`);
      for (const { ms, error } of others) {
        expect(error).toBeUndefined();
        expect(ms).toBeLessThan(WENT_ON_MS);
      }
    } finally {
      await lock.release();
    }
    await held;
    expect(await store.getStatus(a)).toMatchObject({ state: "done" });
  } finally {
    await store.close();
  }
}, 30_000);
