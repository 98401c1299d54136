// A stream written through one pool (or client) of a process and read through another:
// the reader waits between writes like any other. Its own page once counted as news to
// it (src/tail.rs), so it read pages in a loop, thousands of statements a second, until
// the stream changed again.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, freshSchema, sleep, uid, urlWithApp } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

/** Counts readFrom's page statements. */
let pages = 0;
class CountingClient extends pg.Client {
  // @ts-expect-error pg's query has many overloads; the store uses the promise form.
  override async query(config: string | { text: string }, values?: unknown[]) {
    const text = typeof config === "string" ? config : config.text;
    if (text.includes("UNION ALL SELECT seq")) pages++;
    return super.query(config as never, values as never);
  }
}

describe.each(["connection string", "pg.Pool"] as const)("%s", (kind) => {
  it("a reader of a stream another pool of the process writes waits between writes", async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, Client: CountingClient as unknown as typeof pg.Client });
    const reader = new PostgresStreamStore(kind === "pg.Pool" ? pool : urlWithApp(uid("reads")), tables.stream);
    const writer = new PostgresStreamStore(urlWithApp(uid("writes")), tables.stream);
    const sent = () => (kind === "pg.Pool" ? pages : (reader.stats().statementsSent ?? 0));
    const id = uid("other-pool");
    try {
      await writer.create(id);
      await writer.append(id, "a");
      const read: string[] = [];
      const reading = (async () => {
        for await (const chunk of reader.readFrom(id, 0)) read.push(chunk.data);
      })();
      await sleep(300);
      for (const data of ["b", "c"]) {
        await writer.append(id, data);
        await sleep(100);
        const before = sent();
        await sleep(500);
        // A wake-up and a page or two per write, and the shared check: not a loop.
        expect(sent() - before).toBeLessThan(10);
      }
      await writer.complete(id);
      await reading;
      expect(read).toEqual(["a", "b", "c"]);
    } finally {
      await reader.close();
      await writer.close();
      await pool.end();
    }
  }, 20_000);
});
