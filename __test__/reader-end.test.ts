// A reader ends as soon as its stream has: also when complete() lands while the reader's
// page is in flight. The page was read before the finish (the stream still active then);
// the finish, learned meanwhile, must survive that page arriving (src/tail.rs), instead of
// the reader waiting for the next poll (a second by default, pollIntervalMs at most).
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, eventually, freshSchema, sleep, uid } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

/** How long a page's answer is held back, once `slowPages.on`. */
const PAGE_DELAY_MS = 600;
const slowPages = { on: false, landed: 0 };

/** A pg.Client whose answers to readFrom's page statement come late (`slowPages`). */
class SlowPageClient extends pg.Client {
  // @ts-expect-error pg's query has many overloads; the store uses the promise form.
  override async query(config: string | { text: string }, values?: unknown[]) {
    const result = await super.query(config as never, values as never);
    const text = typeof config === "string" ? config : config.text;
    if (slowPages.on && text.includes("UNION ALL SELECT seq")) {
      await sleep(PAGE_DELAY_MS);
      slowPages.landed ||= performance.now(); // the first page
    }
    return result;
  }
}

it("complete() while a reader's first page is in flight: the reader ends when the page lands", async () => {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, Client: SlowPageClient as unknown as typeof pg.Client });
  // A long poll, so that only the finish itself can end the reader in time.
  const store = new PostgresStreamStore(pool, { ...tables.stream, pollIntervalMs: 5_000 });
  try {
    // The listener up and confirmed, as in a running app.
    const idle = uid("idle");
    await store.create(idle);
    const waiting = (async () => {
      for await (const chunk of store.readFrom(idle, 0)) return chunk;
    })();
    await eventually(async () => store.stats().listener === "confirmed");

    const id = uid("end");
    await store.create(id);
    await store.append(id, "a");
    slowPages.on = true;
    const read: unknown[] = [];
    const reader = (async () => {
      for await (const chunk of store.readFrom(id, 0)) read.push(chunk);
      return performance.now();
    })();
    await sleep(100); // its first page is in flight
    await store.complete(id);
    const ended = await reader;
    slowPages.on = false;
    expect(read).toEqual([{ seq: 1, data: "a" }]);
    expect(slowPages.landed).toBeGreaterThan(0);
    expect(ended - slowPages.landed).toBeLessThan(300);

    await store.append(idle, "x");
    await waiting;
  } finally {
    await store.close();
    await pool.end();
  }
}, 20_000);
