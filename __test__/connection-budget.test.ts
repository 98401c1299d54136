// The connection budget: connections opened on demand and closed when idle; a server at
// max_connections (53300) waited out, not reported. Several processes, each with ten
// readers, against a throwaway server of this file's own whose max_connections is low.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { startThrowaway, type Throwaway } from "../scripts/throwaway-postgres.mjs";
import { startWorker } from "./fixtures/workers.js";
import { ddl, eventually, sleep, uid } from "./helpers.js";

const MAX_CONNECTIONS = 12;
let server: Throwaway;
let admin: pg.Client;

beforeAll(async () => {
  server = await startThrowaway({ settings: { max_connections: String(MAX_CONNECTIONS) } });
  admin = new pg.Client(server.url);
  await admin.connect();
  await admin.query(ddl({}));
}, 60_000);

afterAll(async () => {
  await admin?.end();
  await server?.stop();
});

const withApp = (app: string) => {
  const u = new URL(server.url);
  u.searchParams.set("application_name", app);
  return u.href;
};

async function connectionsOf(app: string) {
  const { rows } = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [app]);
  return rows[0].n as number;
}

describe("the connection budget", () => {
  it("opens connections on demand and closes idle ones after idleTimeoutMs", async () => {
    const app = `idle_${uid().slice(2, 10)}`;
    const store = new PostgresStreamStore(withApp(app), { idleTimeoutMs: 300 });
    expect(store.stats().size).toBe(0);
    expect(await connectionsOf(app)).toBe(0);
    const id = uid("idle");
    await store.create(id);
    await store.append(id, "x");
    expect(store.stats().size).toBe(1);
    expect(await connectionsOf(app)).toBe(1);
    await eventually(async () => store.stats().size === 0 && (await connectionsOf(app)) === 0, 3_000);
    // And opens again when needed.
    expect(await store.append(id, "y")).toBe(2);
    await store.close();
  });

  it("the default application_name is aibind-rs", async () => {
    const store = new PostgresStreamStore(server.url, {});
    await store.getStatus("none");
    const { rows } = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'aibind-rs'");
    expect(rows[0].n).toBeGreaterThan(0);
    await store.close();
  });

  it("3 processes x 10 readers on a full server: every chunk arrives once, in order; nothing fails that could wait", async () => {
    const ids = Array.from({ length: 10 }, () => uid("budget"));
    const writer = new PostgresStreamStore(server.url, { poolSize: 1 });
    for (const id of ids) await writer.create(id);
    // Take every slot left, so that the readers' processes are refused (53300) at first.
    const fillers: pg.Client[] = [];
    for (;;) {
      const c = new pg.Client(server.url);
      try {
        await c.connect();
        fillers.push(c);
      } catch (err) {
        expect((err as { code?: string }).code).toBe("53300");
        break;
      }
    }
    const workers = Array.from({ length: 3 }, () => startWorker(server.url, { tail: { ids } }));
    await Promise.all(workers.map((w) => w.started));
    await sleep(1_000);
    for (const c of fillers) await c.end();
    for (let i = 1; i <= 10; i++) {
      await Promise.all(ids.map((id) => writer.append(id, `chunk ${i}`)));
      await sleep(10);
    }
    await Promise.all(ids.map((id) => writer.complete(id)));
    const results = await Promise.all(workers.map((w) => w.done));
    let refused = 0;
    for (const r of results) {
      expect(r.errors).toEqual([]);
      expect(r.read).toHaveLength(10);
      for (const chunks of r.read ?? []) {
        expect(chunks.map(([seq, data]) => [seq, data])).toEqual(Array.from({ length: 10 }, (_, i) => [i + 1, `chunk ${i + 1}`]));
      }
      refused += Number(r.stats.connectionsRefused);
      expect(Number(r.stats.maxSize)).toBe(10);
    }
    expect(refused).toBeGreaterThan(0); // the 53300 path was taken
    await writer.close();
  });
});
