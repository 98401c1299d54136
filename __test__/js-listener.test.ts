// Cross-process wake-ups for JS clients (lib/listener.cjs, lib/client-hub.cjs): a LISTEN
// connection per pg.Pool / pg.Client / postgres.js client object, NOTIFYs of appends sent
// through the client, and one shared check of all waiting readers. Readers here have a
// poll interval of a minute wherever only a notification (or the listener's catch-up
// after it LISTENs again) can deliver within the test's time.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore, wrapPostgresJs, type PostgresClient } from "../index.js";
import { startPgBouncer, type PgBouncer } from "../scripts/pgbouncer.mjs";
import { startWorker } from "./fixtures/workers.js";
import { DATABASE_URL, adminPool, collect, eventually, freshSchema, sleep, uid, urlWithApp } from "./helpers.js";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
let bouncer: PgBouncer;

beforeAll(async () => {
  tables = await freshSchema(admin);
  bouncer = await startPgBouncer({ target: DATABASE_URL, mode: "transaction" });
});
afterAll(async () => {
  await bouncer?.stop();
  await tables.drop();
  await admin.end();
});

type Kind = "pg.Pool" | "pg.Client" | "postgres.js";

/** A client of `kind` whose connections carry application_name `app`. */
async function makeClient(kind: Kind, app: string, url = DATABASE_URL) {
  const withApp = new URL(url);
  withApp.searchParams.set("application_name", app);
  if (kind === "pg.Pool") {
    const pool = new pg.Pool({ connectionString: withApp.href, max: 5 });
    return { client: pool as PostgresClient, end: () => pool.end(), pool };
  }
  if (kind === "pg.Client") {
    const client = new pg.Client({ connectionString: withApp.href });
    await client.connect();
    return { client: client as PostgresClient, end: () => client.end(), pool: undefined };
  }
  const sql = postgres(url, { max: 5, onnotice: () => {}, connection: { application_name: app } });
  return { client: wrapPostgresJs(sql), end: () => sql.end(), pool: undefined };
}

/** The pids of LISTEN connections with this application_name. */
async function listeners(app: string) {
  const { rows } = await admin.query(
    "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query ILIKE 'listen %aibind_stream_writes%'",
    [app],
  );
  return rows.map((r) => r.pid as number);
}

const seqs = (n: number, from = 1) => Array.from({ length: n }, (_, i) => i + from);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

describe.each(["pg.Pool", "pg.Client", "postgres.js"] as const)("through %s", (kind) => {
  it("starts no listener until a reader waits, then delivers another process's appends in order", async () => {
    const app = `jsl_${uid().slice(2, 12)}`;
    const { client, end } = await makeClient(kind, app);
    const store = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 60_000 });
    try {
      const ids = [uid(), uid()];
      for (const id of ids) await store.create(id);
      expect(store.stats().listener).toBe("off");
      expect(await listeners(app)).toEqual([]);
      const received: [number, string, number][][] = ids.map(() => []);
      const readings = ids.map(async (id, i) => {
        for await (const { seq, data } of store.readFrom(id, 0)) received[i].push([seq, data, Date.now()]);
      });
      await eventually(async () => store.stats().listener === "confirmed", 8_000);
      expect(await listeners(app)).toHaveLength(1); // one connection, however many readers
      const started = Date.now();
      const writer = startWorker(DATABASE_URL, { client: kind, options: tables.stream, write: { ids, count: 20, gapMs: 10 } });
      expect((await writer.done).errors).toEqual([]);
      await Promise.all(readings);
      // A poll of a minute would have missed all of it.
      expect(Date.now() - started).toBeLessThan(15_000);
      const latencies: number[] = [];
      for (const got of received) {
        expect(got.map(([seq]) => seq)).toEqual(seqs(20));
        expect(got.map(([, data]) => data.split("@")[0])).toEqual(seqs(20).map(String));
        for (const [, data, at] of got) latencies.push(at - Number(data.split("@")[1]));
      }
      console.log(`${kind}: cross-process tail latency p50 ${median(latencies)} ms, max ${Math.max(...latencies)} ms`);
      expect(median(latencies)).toBeLessThan(500);
    } finally {
      await store.close();
      await end();
    }
  });
});

describe.each(["pg.Pool", "postgres.js"] as const)("stopSignal through %s", (kind) => {
  it("aborts when another process stops the stream (the listener starts with the signal)", async () => {
    const app = `jsl_${uid().slice(2, 12)}`;
    const { client, end } = await makeClient(kind, app);
    const store = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 60_000 });
    try {
      const id = uid();
      await store.create(id);
      const signal = store.stopSignal(id);
      await eventually(async () => store.stats().listener === "confirmed", 8_000);
      const aborted = new Promise<number>((resolve) => signal.addEventListener("abort", () => resolve(Date.now())));
      const script = `
        import { PostgresStreamStore } from ${JSON.stringify(`${root}index.js`)};
        const store = new PostgresStreamStore(process.env.DATABASE_URL, ${JSON.stringify(tables.stream)});
        await store.stop(${JSON.stringify(id)});
        console.log(Date.now());
        await store.close();
      `;
      const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, DATABASE_URL }, timeout: 20_000 });
      const stoppedAt = Number(stdout.trim());
      // A poll of a minute would not have seen it.
      expect((await aborted) - stoppedAt).toBeLessThan(2_000);
      expect((signal.reason as { code?: string }).code).toBe("STREAM_NOT_ACTIVE");
    } finally {
      await store.close();
      await end();
    }
  });
});

describe.each(["pg.Pool", "postgres.js"] as const)("fan-out through %s", (kind) => {
  it("20 readers in another process get every chunk exactly once, in order", async () => {
    const id = uid();
    const app = `jsl_${uid().slice(2, 12)}`;
    const { client, end } = await makeClient(kind, app);
    const store = new PostgresStreamStore(client, tables.stream);
    try {
      await store.create(id);
      const readers = startWorker(DATABASE_URL, {
        client: kind,
        confirmed: true,
        options: { ...tables.stream, pollIntervalMs: 60_000 },
        tail: { ids: Array.from({ length: 20 }, () => id) },
      });
      await readers.started;
      for (let i = 1; i <= 50; i++) await store.append(id, `c${i}`);
      await store.complete(id);
      const result = await readers.done;
      expect(result.errors).toEqual([]);
      expect(result.read).toHaveLength(20);
      for (const got of result.read ?? []) {
        expect(got.map(([seq, data]) => [seq, data])).toEqual(seqs(50).map((n) => [n, `c${n}`]));
      }
      expect(result.stats.listener).toBe("confirmed");
    } finally {
      await store.close();
      await end();
    }
  });
});

/** A pg.Pool whose clients count the statements they send. */
function countingPool(url: string) {
  const counter = { statements: 0 };
  class Counting extends pg.Client {
    constructor(config?: string | pg.ClientConfig) {
      super(config);
      const self = this as unknown as { query: (...args: unknown[]) => unknown };
      const query = self.query.bind(this);
      self.query = (...args) => {
        counter.statements++;
        return query(...args);
      };
    }
  }
  const pool = new pg.Pool({ connectionString: url, max: 5, Client: Counting });
  return { pool, counter };
}

/** Statements per second `counter` saw over `ms`. */
async function rate(counter: { statements: number }, ms: number) {
  const before = counter.statements;
  await sleep(ms);
  return ((counter.statements - before) * 1000) / ms;
}

describe("idle load", () => {
  it("50 waiting readers cost at most 2 statements a second once the listener is confirmed", async () => {
    const { pool, counter } = countingPool(DATABASE_URL);
    const store = new PostgresStreamStore(pool, { ...tables.stream, pollIntervalMs: 100 });
    const ids = Array.from({ length: 50 }, () => uid());
    try {
      for (const id of ids) await store.create(id);
      const readings = ids.map((id) => collect(store.readFrom(id, 0)));
      await eventually(async () => store.stats().listener === "confirmed", 8_000);
      await sleep(300);
      const perSecond = await rate(counter, 3_000);
      console.log(`idle: 50 readers, listener confirmed: ${perSecond.toFixed(1)} statements/s`);
      expect(perSecond).toBeLessThanOrEqual(2);
      // They end when their streams do.
      for (const id of ids) await store.complete(id);
      for (const reading of readings) expect(await reading).toEqual([]);
    } finally {
      await store.close();
      await pool.end();
    }
  });
});

/** PgBouncer's clients with this application_name. */
async function bouncerClients(app: string) {
  const c = new pg.Client(bouncer.adminUrl);
  await c.connect();
  try {
    return (await c.query("SHOW CLIENTS")).rows.filter((r) => r.application_name === app).length;
  } finally {
    await c.end();
  }
}

describe.each(["pg.Pool", "postgres.js"] as const)("behind PgBouncer in transaction mode through %s", (kind) => {
  it("the probe never comes back: the listener is closed (deaf-polling), and readers get every chunk by the shared check", async () => {
    const id = uid();
    const app = `jsl_${uid().slice(2, 12)}`;
    const { client, end, pool } = await makeClient(kind, app, bouncer.url);
    const store = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 50 });
    try {
      await store.create(id);
      const reading = collect(store.readFrom(id, 0));
      await eventually(async () => store.stats().listener === "connecting", 2_000);
      await eventually(async () => store.stats().listener === "deaf-polling", 8_000);
      // Its LISTEN connection is gone: what is left at PgBouncer is the client's own.
      if (pool) await eventually(async () => (await bouncerClients(app)) <= pool.totalCount);
      const writer = startWorker(bouncer.url, { client: kind, options: tables.stream, write: { ids: [id], count: 20, gapMs: 10 } });
      expect((await writer.done).errors).toEqual([]);
      expect((await reading).map((c) => c.seq)).toEqual(seqs(20));
      expect(store.stats().listener).toBe("deaf-polling");
    } finally {
      await store.close();
      await end();
    }
  });
});

describe.each(["pg.Pool", "postgres.js"] as const)("a lost listener through %s", (kind) => {
  it("reconnects; readers catch up from their cursors with nothing missed or repeated", async () => {
    const app = `jsl_${uid().slice(2, 12)}`;
    const { client, end } = await makeClient(kind, app);
    const store = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 60_000 });
    try {
      const ids = [uid(), uid()];
      for (const id of ids) await store.create(id);
      const got: number[][] = ids.map(() => []);
      const readings = ids.map(async (id, i) => {
        for await (const { seq } of store.readFrom(id, 0)) got[i].push(seq);
      });
      await eventually(async () => store.stats().listener === "confirmed", 8_000);
      await eventually(async () => (await listeners(app)).length === 1);
      const [pid] = await listeners(app);
      // Chunks written without NOTIFY (as by the original package) in the very transaction
      // that kills the listener: only its catch-up once it LISTENs again can find them.
      const [a, b] = ids; // uids: nothing to escape
      const rows = ids.flatMap((id) => [1, 2, 3].map((seq) => `('${id}', ${seq}, 'old ${seq}')`));
      await admin.query(
        `BEGIN;
         INSERT INTO ${tables.stream.chunksTable} (id, seq, data) VALUES ${rows.join(", ")};
         UPDATE ${tables.stream.statusTable} SET total_chunks = 3 WHERE id IN ('${a}', '${b}');
         SELECT pg_terminate_backend(${pid});
         COMMIT;`,
      );
      await eventually(async () => got.every((seqsOf) => seqsOf.length === 3));
      await eventually(async () => {
        const now = await listeners(app);
        return now.length === 1 && now[0] !== pid && store.stats().listener === "confirmed";
      });
      // The new listener hears another process's appends.
      const writer = startWorker(DATABASE_URL, { client: kind, options: tables.stream, write: { ids, count: 3, gapMs: 10 } });
      expect((await writer.done).errors).toEqual([]);
      await Promise.all(readings);
      for (const seqsOf of got) expect(seqsOf).toEqual(seqs(6));
    } finally {
      await store.close();
      await end();
    }
  });
});

describe("a stream this process appends to", () => {
  it("needs no listener: it closes while readers wait on it, and opens again for a write from elsewhere", async () => {
    const app = `jsl_${uid().slice(2, 12)}`;
    const { client, end } = await makeClient("pg.Pool", app);
    const store = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 200 });
    try {
      const id = uid();
      await store.create(id);
      const got: number[] = [];
      const reading = (async () => {
        for await (const { seq } of store.readFrom(id, 0)) got.push(seq);
      })();
      // Created here only: its chunks may come from elsewhere, so the reader relies on it.
      await eventually(async () => store.stats().listener === "confirmed", 8_000);
      for (let i = 1; i <= 30; i++) await store.append(id, `here ${i}`);
      await eventually(async () => got.length === 30 && store.stats().listener === "off", 8_000);
      expect(await listeners(app)).toEqual([]);
      // Another process appends: the shared check finds it, and the reader's next wait
      // relies on the listener again.
      const states = new Set<string>();
      const watching = setInterval(() => states.add(store.stats().listener as string), 5);
      const writer = startWorker(DATABASE_URL, { client: "pg.Pool", options: tables.stream, write: { ids: [id], count: 40, gapMs: 20 } });
      expect((await writer.done).errors).toEqual([]);
      await reading;
      clearInterval(watching);
      expect(got).toEqual(seqs(70));
      expect(states).toContain("confirmed");
    } finally {
      await store.close();
      await end();
    }
  });
});

/** Runs `body` (ESM) in a child process with `pg` and the package as `store`'s module. */
async function child(body: string) {
  const script = `
    import pg from ${JSON.stringify(`${root}node_modules/pg/lib/index.js`)};
    import { PostgresStreamStore } from ${JSON.stringify(`${root}index.js`)};
    const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, allowExitOnIdle: true });
    const store = new PostgresStreamStore(pool, ${JSON.stringify(tables.stream)});
    const id = "exit-" + Math.random();
    await store.create(id);
    const reading = (async () => { for await (const _ of store.readFrom(id, 0)); })();
    while (store.stats().listener !== "confirmed") await sleep(10);
    ${body}
  `;
  const started = Date.now();
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, DATABASE_URL },
    timeout: 20_000,
  });
  return { stdout, ms: Date.now() - started };
}

describe("the process and close()", () => {
  it("close() resolves at once with a listener open, and the process then exits on its own", async () => {
    const { stdout } = await child(`
      const t = Date.now();
      await store.close();
      console.log(JSON.stringify({ closeMs: Date.now() - t }));
    `);
    expect(JSON.parse(stdout.trim()).closeMs).toBeLessThan(1_000);
  });

  it("a store left open with its listener confirmed does not keep the process alive", async () => {
    // (A reader still waiting would, as a poll timer does in the original.)
    const { stdout } = await child(`
      await store.complete(id);
      await reading;
      await sleep(1_500); // the shared check has gone idle; the listener stays
      console.log(store.stats().listener);
    `);
    expect(stdout.trim()).toBe("confirmed");
  });
});

describe("listen: false", () => {
  it("opens no LISTEN connection; readers still share one check every pollIntervalMs", async () => {
    const app = `jsl_${uid().slice(2, 12)}`;
    const { pool, counter } = countingPool(urlWithApp(app));
    const store = new PostgresStreamStore(pool, { ...tables.stream, pollIntervalMs: 100, listen: false });
    const ids = Array.from({ length: 50 }, () => uid());
    try {
      for (const id of ids) await store.create(id);
      const readings = ids.map((id) => collect(store.readFrom(id, 0)));
      await sleep(500);
      const perSecond = await rate(counter, 2_000);
      console.log(`idle: 50 readers, listen: false, pollIntervalMs 100: ${perSecond.toFixed(1)} statements/s`);
      // One check per tick for all of them, not 50 polls (500 a second).
      expect(perSecond).toBeLessThanOrEqual(15);
      const writer = startWorker(DATABASE_URL, { client: "pg.Pool", options: tables.stream, write: { ids: ids.slice(0, 3), count: 3, gapMs: 10 } });
      expect((await writer.done).errors).toEqual([]);
      for (const [i, reading] of readings.slice(0, 3).entries()) expect((await reading).map((c) => c.seq), `reader ${i}`).toEqual(seqs(3));
      for (const id of ids.slice(3)) await store.complete(id);
      await Promise.all(readings);
      expect(store.stats().listener).toBe("off");
      expect(await listeners(app)).toEqual([]);
    } finally {
      await store.close();
      await pool.end();
    }
  });

  it("wrapPostgresJs keeps its sql out of sight", () => {
    const sql = postgres(DATABASE_URL, { max: 1 });
    expect(Object.keys(wrapPostgresJs(sql))).toEqual(["query"]);
    expect(JSON.stringify(wrapPostgresJs(sql))).toBe("{}");
  });
});
