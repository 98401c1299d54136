// Pools, close(), and the process: stores built from one connection string share a pool,
// close() releases it and ends waiting readers, and an open store never keeps the
// process alive. Also: load() without the optional peer @aibind/core.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore } from "../index.js";
import {
  DATABASE_URL,
  adminPool,
  collect,
  eventually,
  freshSchema,
  rejection,
  sleep,
  uid,
  urlWithApp,
} from "./helpers.js";

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

async function connectionsOf(app: string) {
  const { rows } = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [
    app,
  ]);
  return rows[0].n as number;
}

describe("the database under test", () => {
  it("is the PostgreSQL version this pass of npm test is for", async () => {
    const { rows } = await admin.query("SELECT current_setting('server_version_num')::int AS v");
    const major = Math.floor(rows[0].v / 10000);
    if (process.env.AIBIND_PG_MAJOR) expect(major).toBe(Number(process.env.AIBIND_PG_MAJOR));
    else expect(major).toBeGreaterThanOrEqual(13);
  });
});

describe("the Rust pool", () => {
  it("is shared by stores built from the same connection string, opened lazily, closed with its last store", async () => {
    const app = `aibind_${uid("p").slice(0, 20)}`;
    const url = urlWithApp(app);
    const streams = new PostgresStreamStore(url, { ...tables.stream, poolSize: 3 });
    const conversations = new PostgresConversationStore(url, { ...tables.conversation, poolSize: 3 });
    expect(await connectionsOf(app)).toBe(0); // nothing opened before the first query

    // Hold connections busy from both stores at once: one pool of 3, not two.
    const busy = Array.from({ length: 12 }, (_, i) =>
      i % 2 ? streams.getStatus(uid()) : conversations.loadJSON(uid()),
    );
    await Promise.all(busy);
    const id = uid();
    await streams.create(id);
    const appends = Promise.all(Array.from({ length: 30 }, (_, i) => streams.append(id, `${i}`)));
    const loads = Promise.all(Array.from({ length: 30 }, () => conversations.loadJSON(uid())));
    await Promise.all([appends, loads]);
    const open = await connectionsOf(app);
    expect(open).toBeGreaterThan(0);
    expect(open).toBeLessThanOrEqual(3);

    await streams.close();
    expect(streams.closed).toBe(true);
    // The other store keeps the pool.
    expect(await conversations.loadJSON(uid())).toBeNull();
    await conversations.close();
    await eventually(async () => (await connectionsOf(app)) === 0);
  });
});

describe("close()", () => {
  it("makes later calls reject with STORE_CLOSED", async () => {
    for (const client of [DATABASE_URL, { query: async () => ({ rows: [] }) }]) {
      const store = new PostgresStreamStore(client, tables.stream);
      await store.close();
      await store.close(); // twice is fine
      const err = await rejection(store.create(uid()));
      expect(err.code).toBe("STORE_CLOSED");
      expect(err.message).toMatch(/closed/);
      expect((await rejection(collect(store.readFrom(uid(), 0)))).code).toBe("STORE_CLOSED");
      const conversations = new PostgresConversationStore(client, tables.conversation);
      await conversations.close();
      expect((await rejection(conversations.loadJSON("x"))).code).toBe("STORE_CLOSED");
    }
  });

  it("ends readers that are waiting for chunks", async () => {
    const store = new PostgresStreamStore(DATABASE_URL, { ...tables.stream, pollIntervalMs: 60_000 });
    const id = uid();
    await store.create(id);
    await store.append(id, "only");
    const reading = collect(store.readFrom(id, 0));
    await sleep(100); // the reader has the chunk and now sleeps a 60 s poll interval
    const closedAt = Date.now();
    await store.close();
    expect((await reading).map((c) => c.data)).toEqual(["only"]);
    expect(Date.now() - closedAt).toBeLessThan(1000);
  });

  // A pg.Pool's reader, once its store's shared check runs, waits parked on its stream
  // rather than on the runtime (src/reader/pause.rs): close() and a write still end it.
  it("ends a pg.Pool's reader that waits between chunks", async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL });
    const store = new PostgresStreamStore(pool, { ...tables.stream, pollIntervalMs: 60_000 });
    const id = uid();
    await store.create(id);
    await store.append(id, "a");
    const got: string[] = [];
    const reading = (async () => {
      for await (const c of store.readFrom(id, 0)) got.push(c.data);
    })();
    await eventually(async () => got.length === 1 && store.stats().readersWaiting === 1);
    await sleep(200); // the check runs: the next wait is parked
    await store.append(id, "b");
    await eventually(async () => got.length === 2);
    await sleep(100);
    const closedAt = Date.now();
    await store.close();
    await reading;
    expect(got).toEqual(["a", "b"]);
    expect(Date.now() - closedAt).toBeLessThan(1000);
    await pool.end();
  });

  it("is what Symbol.asyncDispose calls", async () => {
    const store = new PostgresStreamStore(DATABASE_URL, tables.stream) as PostgresStreamStore & {
      [Symbol.asyncDispose](): Promise<void>;
    };
    await store[Symbol.asyncDispose]();
    expect(store.closed).toBe(true);
  });
});

describe("the process", () => {
  it("exits on its own with open stores, a used pool, its LISTEN connection and a JS client", async () => {
    const script = `
      import { PostgresStreamStore, PostgresConversationStore } from ${JSON.stringify(root + "index.js")};
      const streams = new PostgresStreamStore(process.env.DATABASE_URL, ${JSON.stringify(tables.stream)});
      const id = "exit-" + Math.random();
      await streams.create(id);
      // A reader that waited (so the pool's LISTEN connection is up) and finished.
      const reading = (async () => { for await (const _ of streams.readFrom(id, 0)); })();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await streams.append(id, "x");
      await streams.complete(id);
      await reading;
      const js = new PostgresConversationStore({ query: async () => ({ rows: [] }) });
      await js.loadJSON("nobody");
      console.log("done");
    `;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, DATABASE_URL },
      timeout: 15_000,
    });
    expect(stdout.trim()).toBe("done");
  });

  for (const client of ["connection string", "pg.Pool"] as const) {
    it(`a stop signal of a stream that stays active does not keep it alive (${client})`, async () => {
      // The producer's own work keeps a process alive while it runs; the signal alone,
      // like an AbortSignal of the app's own, does not.
      const script = `
        import pg from ${JSON.stringify(root + "node_modules/pg/lib/index.js")};
        import { PostgresStreamStore } from ${JSON.stringify(root + "index.js")};
        const client = ${client === "pg.Pool" ? "new pg.Pool({ connectionString: process.env.DATABASE_URL, allowExitOnIdle: true })" : "process.env.DATABASE_URL"};
        const store = new PostgresStreamStore(client, ${JSON.stringify(tables.stream)});
        const id = "signal-" + Math.random();
        await store.create(id);
        const signal = store.stopSignal(id);
        // It still works while the process is alive: a stop through another store aborts it.
        const other = new PostgresStreamStore(process.env.DATABASE_URL, ${JSON.stringify(tables.stream)});
        const aborted = new Promise((resolve) => signal.addEventListener("abort", resolve));
        const work = setInterval(() => {}, 1000); // the producer's own work, meanwhile
        await new Promise((resolve) => setTimeout(resolve, 100));
        await other.stop(id);
        await aborted;
        clearInterval(work);
        await store.create(id + "-open");
        store.stopSignal(id + "-open"); // never stopped
        console.log("done");
      `;
      const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
        env: { ...process.env, DATABASE_URL },
        timeout: 15_000,
      });
      expect(stdout.trim()).toBe("done");
    });

    it(`a reader waiting for chunks keeps it alive until the stream ends, then it exits (${client})`, async () => {
      // Another process writes, 600 ms after the reader began to wait: with nothing else
      // pending, only the waiting reader can keep this one alive that long.
      const id = uid();
      await new PostgresStreamStore(admin, tables.stream).create(id);
      const script = `
        import pg from ${JSON.stringify(root + "node_modules/pg/lib/index.js")};
        import { PostgresStreamStore } from ${JSON.stringify(root + "index.js")};
        const client = ${client === "pg.Pool" ? "new pg.Pool({ connectionString: process.env.DATABASE_URL, allowExitOnIdle: true })" : "process.env.DATABASE_URL"};
        const store = new PostgresStreamStore(client, ${JSON.stringify(tables.stream)});
        const seqs = [];
        for await (const chunk of store.readFrom(${JSON.stringify(id)}, 0)) seqs.push(chunk.seq);
        console.log(JSON.stringify(seqs));
      `;
      const child = run(process.execPath, ["--input-type=module", "-e", script], {
        env: { ...process.env, DATABASE_URL },
        timeout: 15_000,
      });
      const writer = new PostgresStreamStore(admin, tables.stream);
      await sleep(600);
      await writer.append(id, "a");
      await sleep(300);
      await writer.append(id, "b");
      await writer.complete(id);
      const { stdout } = await child;
      expect(JSON.parse(stdout.trim())).toEqual([1, 2]);
    });
  }

  it("a worker thread terminated while its reader waits leaves the process and its other readers well", async () => {
    // The writes wake the dead worker's reader, whose wake-up call (src/waker.rs) must then
    // find its JS thread gone without harm.
    const script = `
      import { Worker } from "node:worker_threads";
      import { PostgresStreamStore } from ${JSON.stringify(root + "index.js")};
      const tables = ${JSON.stringify(tables.stream)};
      const store = new PostgresStreamStore(process.env.DATABASE_URL, tables);
      for (const client of ["url", "pg"]) {
        const id = "worker-" + client + "-" + Math.random();
        await store.create(id);
        const worker = new Worker(\`
          const { parentPort, workerData: d } = require("node:worker_threads");
          const { PostgresStreamStore } = require(${JSON.stringify(root + "index.cjs")});
          const pg = require(${JSON.stringify(root + "node_modules/pg")});
          const client = d.client === "pg" ? new pg.Pool({ connectionString: d.url }) : d.url;
          const reading = new PostgresStreamStore(client, d.tables).readFrom(d.id, 0)[Symbol.asyncIterator]().next();
          setTimeout(() => parentPort.postMessage("waiting"), 200);
          reading.then(() => {});
        \`, { eval: true, execArgv: [], workerData: { url: process.env.DATABASE_URL, tables, id, client } });
        await new Promise((resolve) => worker.once("message", resolve));
        await worker.terminate();
        for (let i = 0; i < 5; i++) await store.append(id, "x" + i);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const id = "after-" + Math.random();
      await store.create(id);
      const got = [];
      const reading = (async () => { for await (const chunk of store.readFrom(id, 0)) got.push(chunk.seq); })();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await store.append(id, "a");
      await store.append(id, "b");
      await store.complete(id);
      await reading;
      await store.close();
      console.log(JSON.stringify(got));
    `;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, DATABASE_URL },
      timeout: 20_000,
    });
    expect(JSON.parse(stdout.trim())).toEqual([1, 2]);
  });

  it("load() names @aibind/core when it is not installed; loadJSON() still works", async () => {
    const script = `
      import { PostgresConversationStore } from ${JSON.stringify(root + "index.js")};
      const store = new PostgresConversationStore(process.env.DATABASE_URL, ${JSON.stringify(tables.conversation)});
      await store.saveJSON("s1", "{}");
      const out = { json: await store.loadJSON("s1") };
      try { await store.load("s1"); } catch (err) { out.code = err.code; out.message = err.message; }
      console.log(JSON.stringify(out));
    `;
    const { stdout } = await run(
      process.execPath,
      ["--import", root + "__test__/fixtures/hide-aibind-core.mjs", "--input-type=module", "-e", script],
      { env: { ...process.env, DATABASE_URL }, timeout: 15_000 },
    );
    const out = JSON.parse(stdout);
    expect(out.json).toBe("{}");
    expect(out.code).toBe("MISSING_PEER_DEPENDENCY");
    expect(out.message).toMatch(/@aibind\/core/);
    expect(out.message).toMatch(/npm install @aibind\/core/);
  });
});
