// The fault proxy itself, against the real PostgreSQL through `pg`: each mode does what
// faults.test.ts relies on it to do. It does not import helpers.ts (which loads the addon),
// so it runs while the addon is being rebuilt.
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FaultProxy } from "./fixtures/fault-proxy.js";

const DATABASE_URL = process.env.DATABASE_URL ?? "";
if (!DATABASE_URL) throw new Error("DATABASE_URL is not set: run the tests with `npm test`, which starts a PostgreSQL");
const uid = (prefix: string) => `${prefix}-${randomUUID()}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function eventually(check: () => Promise<boolean>, ms: number) {
  for (const until = Date.now() + ms; Date.now() < until; await sleep(25)) if (await check()) return;
  throw new Error(`condition not met in ${ms} ms`);
}
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error("expected the promise to reject, but it resolved");
}

const target = { host: new URL(DATABASE_URL).hostname || "127.0.0.1", port: Number(new URL(DATABASE_URL).port || 5432) };
const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
const table = `fault_proxy_marks_${randomUUID().replace(/-/g, "").slice(0, 12)}`;
let proxy: FaultProxy;
const clients: pg.Client[] = [];

/** A pg.Client through the proxy; connection errors are the point here, so they are not fatal. */
async function connect(options: Partial<pg.ClientConfig> = {}, connectNow = true) {
  const client = new pg.Client({ connectionString: proxy.url(DATABASE_URL), ...options });
  client.on("error", () => {});
  clients.push(client);
  if (connectNow) await client.connect();
  return client;
}

/** Backends of an application_name, as PostgreSQL sees them. */
const backends = async (app: string) =>
  (await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [app])).rows[0].n as number;

beforeAll(async () => {
  await admin.query(`CREATE TABLE ${table} (tag TEXT NOT NULL)`);
});
afterAll(async () => {
  await admin.query(`DROP TABLE IF EXISTS ${table}`);
  await admin.end();
});
afterEach(async () => {
  await proxy?.close();
  for (const client of clients.splice(0)) await Promise.race([client.end().catch(() => {}), sleep(1000)]);
});

const marks = async (tag: string) =>
  (await admin.query(`SELECT count(*)::int AS n FROM ${table} WHERE tag = $1`, [tag])).rows[0].n as number;

describe("FaultProxy", () => {
  it("pass: forwards both ways, records the connection and its bytes", async () => {
    proxy = await FaultProxy.start(target);
    expect(proxy.url("postgres://u:p@db.example:6543/test?sslmode=disable")).toBe(
      `postgres://u:p@127.0.0.1:${proxy.port}/test?sslmode=disable`,
    );
    const client = await connect();
    expect((await client.query("SELECT 40 + 2 AS n")).rows).toEqual([{ n: 42 }]);
    expect(proxy.accepted).toBe(1);
    const [conn] = proxy.connections;
    expect(conn).toMatchObject({ id: 1, open: true, mode: "pass", droppedUp: 0, droppedDown: 0 });
    expect(conn.bytesUp).toBeGreaterThan(0);
    expect(conn.bytesDown).toBeGreaterThan(0);
    await client.end();
    await eventually(async () => !proxy.connections[0].open, 3000);
  });

  it("stall: holds a query both ways until release(), then forwards it", async () => {
    proxy = await FaultProxy.start(target);
    const client = await connect();
    proxy.set("stall");
    const tag = uid("stall");
    let settled = false;
    const query = client.query(`INSERT INTO ${table} VALUES ($1) RETURNING tag`, [tag]).finally(() => {
      settled = true;
    });
    await sleep(700);
    expect(settled).toBe(false);
    expect(await marks(tag)).toBe(0); // held before the server: not run
    expect(proxy.connections[0]).toMatchObject({ open: true, mode: "stall" });
    proxy.release();
    expect((await query).rows).toEqual([{ tag }]);
    expect(await marks(tag)).toBe(1);
    expect(proxy.connections[0].mode).toBe("pass");
  });

  it("blackhole: a query hangs (until pg's query_timeout), nothing closes; new connections pass", async () => {
    proxy = await FaultProxy.start(target);
    const app = uid("bh");
    const client = await connect({ query_timeout: 1000, application_name: app });
    let ended = false;
    client.on("end", () => {
      ended = true;
    });
    proxy.set("blackhole", { which: "existing" });
    const started = Date.now();
    const err = await rejection(client.query("SELECT 1"));
    expect(err.message).toMatch(/Query read timeout/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    await sleep(300);
    expect(ended).toBe(false); // no FIN, no RST reached the client
    expect(await backends(app)).toBe(1); // nor the server: its backend is still there
    expect(proxy.connections[0]).toMatchObject({ open: true, mode: "blackhole" });
    expect(proxy.connections[0].droppedUp).toBeGreaterThan(0);

    const fresh = await connect();
    expect((await fresh.query("SELECT 7 AS n")).rows).toEqual([{ n: 7 }]);
    expect(proxy.connections[1].mode).toBe("pass");
  });

  it("dropReplies: an INSERT commits though the client never hears back", async () => {
    proxy = await FaultProxy.start(target);
    const client = await connect({ query_timeout: 1500 });
    proxy.set("dropReplies", { which: "existing" });
    const tag = uid("drop");
    const down = proxy.connections[0].bytesDown;
    const err = await rejection(client.query(`INSERT INTO ${table} VALUES ($1)`, [tag]));
    expect(err.message).toMatch(/Query read timeout/);
    await eventually(async () => (await marks(tag)) === 1, 3000);
    expect(proxy.connections[0].bytesDown).toBe(down);
    expect(proxy.connections[0].droppedDown).toBeGreaterThan(0);
  });

  it("dropReplies then reset: the client is reset after resetAfterMs, the INSERT committed", async () => {
    proxy = await FaultProxy.start(target);
    const app = uid("dropreset");
    const client = await connect({ application_name: app });
    proxy.set("dropReplies", { which: "existing", resetAfterMs: 300 });
    const tag = uid("drop");
    const started = Date.now();
    const err = await rejection(client.query(`INSERT INTO ${table} VALUES ($1)`, [tag]));
    expect(err.message).toMatch(/ECONNRESET|Connection terminated/);
    expect(Date.now() - started).toBeLessThan(5000);
    await eventually(async () => (await marks(tag)) === 1, 3000);
    await eventually(async () => (await backends(app)) === 0, 5000); // the server side was ended too
  });

  it("reset(): the client gets ECONNRESET / Connection terminated, the server's backend goes", async () => {
    proxy = await FaultProxy.start(target);
    const app = uid("reset");
    const idle = await connect({ application_name: app });
    const busy = await connect({ application_name: app });
    const errors: Error[] = [];
    idle.on("error", (err) => errors.push(err));
    expect(await backends(app)).toBe(2);
    const sleeping = busy.query("SELECT pg_sleep(3)");
    await sleep(200);
    proxy.reset();
    const err = await rejection(sleeping);
    expect(err.message).toMatch(/ECONNRESET|Connection terminated/);
    await eventually(async () => errors.length > 0, 3000);
    expect(errors[0].message).toMatch(/ECONNRESET|Connection terminated/);
    expect(proxy.connections.every((c) => !c.open)).toBe(true);
    await eventually(async () => (await backends(app)) === 0, 6000); // the busy one after its sleep
  });

  it("refuse: new connections are reset at once; existing ones and later pass work", async () => {
    proxy = await FaultProxy.start(target);
    const before = await connect();
    proxy.set("refuse", { which: "new" });
    expect(() => proxy.set("refuse", { which: "existing" })).toThrow();
    const refused = await connect({ connectionTimeoutMillis: 3000 }, false);
    const err = await rejection(refused.connect());
    expect(err.message).toMatch(/ECONNRESET|Connection terminated/);
    expect(proxy.accepted).toBe(2);
    expect(proxy.refused).toBe(1);
    expect(proxy.connections).toHaveLength(1); // it never reached the server
    expect((await before.query("SELECT 1 AS n")).rows).toEqual([{ n: 1 }]);
    proxy.set("pass", { which: "new" });
    const after = await connect();
    expect((await after.query("SELECT 2 AS n")).rows).toEqual([{ n: 2 }]);
  });

  it("chaos: faults live connections, deterministic for a seed, bounded and stoppable", async () => {
    // Four idle connections, no reconnects: the candidates only change by chaos's own faults.
    const run = async (seed: number) => {
      proxy = await FaultProxy.start(target);
      for (let i = 0; i < 4; i++) await connect();
      const chaos = proxy.chaos({ seed, everyMs: 20, stallMs: 10_000, resetAfterMs: 10_000, maxEvents: 3 });
      await eventually(async () => chaos.events.length === 3, 3000);
      await sleep(100);
      expect(chaos.events).toHaveLength(3); // maxEvents stopped it
      const modes = proxy.connections.map((c) => c.mode);
      await proxy.close();
      for (const client of clients.splice(0)) await client.end().catch(() => {});
      return { events: chaos.events.map(({ kind, link }) => ({ kind, link })), counts: chaos.counts, modes };
    };
    const a = await run(11);
    const b = await run(11);
    expect(b.events).toEqual(a.events);
    expect(b.modes).toEqual(a.modes);
    expect(new Set(a.events.map((e) => e.link)).size).toBe(3); // a faulted link is not picked again
    const other = await run(12);
    expect(other.events).not.toEqual(a.events);

    // stop() ends it: no event after.
    proxy = await FaultProxy.start(target);
    await connect();
    await connect();
    const chaos = proxy.chaos({ seed: 1, everyMs: 30, weights: { reset: 0, stall: 0, dropRepliesThenReset: 0, blackhole: 1 } });
    chaos.stop();
    await sleep(200);
    expect(chaos.events).toEqual([]);
    expect(proxy.connections.every((c) => c.mode === "pass")).toBe(true);
  }, 15_000);
});
