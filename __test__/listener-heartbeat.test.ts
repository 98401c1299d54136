// A LISTEN connection dropped without a word (a NAT or proxy that forgot the flow: no
// FIN, no RST, TCP keepalive answered by whatever sits in between) is noticed: once
// confirmed, the listener probes itself every `listenHeartbeatMs`, and a probe that does
// not come back within 3 s makes it connect again. Before, it stayed "confirmed" and
// deaf for good, and cross-process wake-ups fell back to the once-a-second check.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore, type PostgresClient } from "../index.js";
import { FaultProxy } from "./fixtures/fault-proxy.js";
import { DATABASE_URL, adminPool, eventually, freshSchema, uid, urlWithApp } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
let proxy: FaultProxy;
const pools: pg.Pool[] = [];

beforeAll(async () => {
  tables = await freshSchema(admin);
  const target = new URL(DATABASE_URL);
  proxy = await FaultProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
});
afterAll(async () => {
  for (const pool of pools) await pool.end().catch(() => {});
  await proxy.close();
  await tables.drop();
  await admin.end();
});

const HEARTBEAT_MS = 500;

/** LISTEN sessions at the server of the application `app` (a silenced one lives on there). */
async function listeners(app: string) {
  const { rows } = await admin.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND query = 'LISTEN aibind_stream_writes'",
    [app],
  );
  return rows[0].n as number;
}

const cases: Array<{ name: string; store(app: string): { store: PostgresStreamStore; quiet(): Promise<void> } }> = [
  {
    // Only the listener goes through the proxy (listenUrl).
    name: "connection string",
    store: (app) => ({
      store: new PostgresStreamStore(urlWithApp(uid("beat")), {
        ...tables.stream,
        listenUrl: proxy.url(urlWithApp(app)),
        listenHeartbeatMs: HEARTBEAT_MS,
      }),
      quiet: async () => {},
    }),
  },
  {
    // Everything goes through the proxy; the pool's own idle clients close quickly, so
    // that once they are gone the only link left is the listener's.
    name: "pg.Pool",
    store: (app) => {
      const pool = new pg.Pool({
        connectionString: proxy.url(urlWithApp(app)),
        idleTimeoutMillis: 100,
        connectionTimeoutMillis: 5_000,
      });
      pool.on("error", () => {});
      pools.push(pool);
      return {
        store: new PostgresStreamStore(pool as PostgresClient, { ...tables.stream, listenHeartbeatMs: HEARTBEAT_MS }),
        quiet: () => eventually(async () => pool.totalCount === 0, 5_000),
      };
    },
  },
];

describe.each(cases)("$name", (c) => {
  it("a listener whose connection went silent connects again, and hears again", async () => {
    const app = uid("beat-listen");
    const { store, quiet } = c.store(app);
    const writer = new PostgresStreamStore(DATABASE_URL, tables.stream);
    const id = uid("silent");
    try {
      await store.create(id);
      const read: unknown[] = [];
      const reading = (async () => {
        for await (const chunk of store.readFrom(id, 0)) read.push(chunk);
      })();
      await eventually(async () => store.stats().listener === "confirmed", 5_000);
      // The waiting reader is counted, whichever the client (a JS client's once said 0).
      await eventually(async () => store.stats().readersWaiting === 1, 5_000);
      await quiet();
      expect(await listeners(app)).toBe(1);
      proxy.set("blackhole", { which: "existing" }); // the listener's link, silently
      // A heartbeat goes unanswered: the listener connects again (the silenced session
      // lives on at the server, as behind a NAT), and is confirmed again.
      await eventually(async () => (await listeners(app)) === 2 && store.stats().listener === "confirmed", 8_000);
      // And it hears: another pool's write reaches the reader.
      await writer.append(id, "after");
      await eventually(async () => read.length === 1, 3_000);
      await writer.complete(id);
      await reading;
      expect(read).toEqual([{ seq: 1, data: "after" }]);
    } finally {
      proxy.set("pass", { which: "all" });
      await store.close();
      await writer.close();
    }
  }, 30_000);
});
