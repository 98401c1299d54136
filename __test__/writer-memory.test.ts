// What a store remembers of the streams it writes (lib/appends.cjs) is bounded by idle
// streams only: a stream with appends running or waiting, or with an append whose outcome
// is unknown, is never forgotten, however many other streams the store writes meanwhile.
// Forgetting it broke call order (a later append raced the earlier ones) and stored a
// retried chunk twice.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore, type PostgresClient } from "../index.js";
import { FaultProxy } from "./fixtures/fault-proxy.js";
import { DATABASE_URL, adminPool, appendAgain, freshSchema, rejection, sleep, uid } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
const pools: pg.Pool[] = [];

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  for (const pool of pools) await pool.end().catch(() => {});
  await tables.drop();
  await admin.end();
});

/** One more than the idle streams a store remembers. */
const OTHER_STREAMS = 10_001;

const backends: Array<{ name: string; client(url?: string): string | PostgresClient }> = [
  { name: "connection string", client: (url = DATABASE_URL) => url },
  {
    name: "pg.Pool",
    client: (url = DATABASE_URL) => {
      const pool = new pg.Pool({ connectionString: url, max: 8, connectionTimeoutMillis: 5_000 });
      pool.on("error", () => {});
      pools.push(pool);
      return pool;
    },
  },
];

async function stored(id: string) {
  const { rows } = await admin.query(`SELECT seq, data FROM ${tables.stream.chunksTable} WHERE id = $1 ORDER BY seq`, [id]);
  return rows.map((r: { data: string }) => r.data);
}

/** Appends to `count` streams that do not exist (each costs one lookup): all refused. */
async function writeOthers(store: PostgresStreamStore, count: number, atOnce = count) {
  const codes = new Set<string | number | undefined>();
  for (let from = 0; from < count; from += atOnce) {
    const calls = [];
    for (let i = from; i < Math.min(count, from + atOnce); i++) {
      calls.push(store.append(`other-${i}`, "x").catch((err: { code?: string }) => err.code));
    }
    for (const code of await Promise.all(calls)) codes.add(code);
  }
  expect(codes).toEqual(new Set(["STREAM_NOT_ACTIVE"]));
}

describe.each(backends)("$name: the writer memory", (backend) => {
  it("keeps a stream whose appends are in flight: the last call is stored last", async () => {
    const store = new PostgresStreamStore(backend.client(), tables.stream);
    const id = uid("order");
    await store.create(id);
    const first = Array.from({ length: 30 }, (_, i) => store.append(id, `c${i + 1}`));
    const others = writeOthers(store, OTHER_STREAMS);
    const last = store.append(id, "last");
    expect(await Promise.all(first)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(await last).toBe(31);
    await others;
    expect(await stored(id)).toEqual([...Array.from({ length: 30 }, (_, i) => `c${i + 1}`), "last"]);
    await store.close();
  }, 60_000);

  it("keeps a stream whose append's outcome is unknown: appended again, it is stored once", async () => {
    const target = new URL(DATABASE_URL);
    const proxy = await FaultProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
    try {
      const store = new PostgresStreamStore(backend.client(proxy.url(DATABASE_URL)), {
        ...tables.stream,
        queryTimeoutMs: 600,
        connectTimeoutMs: 300,
      });
      const id = uid("unknown");
      await store.create(id);
      expect(await store.append(id, "one")).toBe(1);
      await sleep(200); // its notification went out: the pool's connection is idle
      // The statement reaches the server and commits; its answer never comes back.
      proxy.set("dropReplies", { which: "all" });
      const err = await rejection(store.append(id, "two"));
      expect(err.code).toBe("APPEND_OUTCOME_UNKNOWN");
      expect(await stored(id)).toEqual(["one", "two"]);
      proxy.set("pass", { which: "new" });
      proxy.reset();
      await writeOthers(store, OTHER_STREAMS, 250);
      // The store still knows the chunk may stand at seq 2: it finds it there.
      expect(await appendAgain(store, id, "two")).toBe(2);
      expect(await stored(id)).toEqual(["one", "two"]);
      await store.close();
    } finally {
      await proxy.close();
    }
  }, 60_000);
});
