// The stores on a Citus cluster (`npm run test:citus`: scripts/with-citus.mjs starts a
// coordinator and two workers): tables distributed by `migrate({ citus: true })`, every
// statement routed to one shard, exactly-once appends under concurrency, readers in other
// processes, cleanup and stop signals, and the appends spread over both workers.
import { ChatHistory } from "@aibind/core";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate, PostgresConversationStore, PostgresStreamStore, wrapPostgresJs } from "../../index.js";
import { collect, DATABASE_URL, sleep, uid } from "../helpers.js";

const admin = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
const modes = [
  { name: "connection string", make: () => ({ client: DATABASE_URL as string | pg.Pool, close: async () => {} }) },
  {
    name: "pg.Pool",
    make: () => {
      const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 20 });
      return { client: pool as string | pg.Pool, close: () => pool.end() };
    },
  },
];

beforeAll(async () => {
  await migrate(DATABASE_URL, { citus: true });
  await migrate(DATABASE_URL, { citus: true }); // again: changes nothing
});
afterAll(() => admin.end());

describe("migrate({ citus: true })", () => {
  it("distributes the stream tables colocated by id and conversations by session_id", async () => {
    const { rows } = await admin.query(
      `SELECT logicalrelid::text AS t, column_to_column_name(logicalrelid, partkey) AS col, colocationid
         FROM pg_dist_partition WHERE logicalrelid::text LIKE 'aibind_%' ORDER BY 1`,
    );
    const by = Object.fromEntries(rows.map((r) => [r.t, r]));
    expect(by.aibind_stream_status.col).toBe("id");
    expect(by.aibind_stream_chunks.col).toBe("id");
    expect(by.aibind_stream_chunks.colocationid).toBe(by.aibind_stream_status.colocationid);
    expect(by.aibind_conversations.col).toBe("session_id");
    const shards = await admin.query(
      `SELECT count(DISTINCT nodeport)::int AS nodes FROM citus_shards WHERE table_name = 'aibind_stream_chunks'::regclass`,
    );
    expect(shards.rows[0].nodes).toBe(2);
  });
});

for (const mode of modes) {
  describe(`on Citus, ${mode.name}`, () => {
    it("streams: create, append, read, status, complete; conversations round trip", async () => {
      const { client, close } = mode.make();
      const store = new PostgresStreamStore(client);
      const id = uid("core");
      await store.create(id);
      await expect(store.create(id)).rejects.toMatchObject({ code: "STREAM_EXISTS" });
      expect(await store.append(id, "a")).toBe(1);
      expect(await store.append(id, "b")).toBe(2);
      await store.complete(id);
      await expect(store.append(id, "c")).rejects.toMatchObject({ code: "STREAM_NOT_ACTIVE" });
      expect(await store.getStatus(id)).toMatchObject({ state: "done", totalChunks: 2 });
      expect(await collect(store.readFrom(id, 0))).toEqual([
        { seq: 1, data: "a" },
        { seq: 2, data: "b" },
      ]);
      const conversations = new PostgresConversationStore(client);
      const session = uid("s");
      await conversations.save(session, new ChatHistory([{ role: "user", content: "hi" }]));
      expect((await conversations.load(session)).messages).toEqual([{ role: "user", content: "hi" }]);
      await conversations.delete(session);
      expect((await conversations.load(session)).messages).toEqual([]);
      await store.close();
      await conversations.close();
      await close();
    });

    it("exactly once: 20 streams x 50 concurrent appends, a live reader each", async () => {
      const { client, close } = mode.make();
      const store = new PostgresStreamStore(client);
      const ids = Array.from({ length: 20 }, () => uid("many"));
      await Promise.all(ids.map((id) => store.create(id)));
      const readers = ids.map((id) => collect(store.readFrom(id, 0)));
      const results = await Promise.allSettled(
        ids.flatMap((id) => Array.from({ length: 50 }, (_, k) => store.append(id, `${id}:${k}`))),
      );
      const failed = results.filter((r) => r.status === "rejected");
      expect(failed.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
      await Promise.all(ids.map((id) => store.complete(id)));
      const read = await Promise.all(readers);
      for (const [i, id] of ids.entries()) {
        expect(read[i].map((c) => c.seq)).toEqual(Array.from({ length: 50 }, (_, k) => k + 1));
        expect(new Set(read[i].map((c) => c.data))).toEqual(new Set(Array.from({ length: 50 }, (_, k) => `${id}:${k}`)));
      }
      const { rows } = await admin.query("SELECT count(*)::int AS n FROM aibind_stream_chunks WHERE id = ANY($1)", [ids]);
      expect(rows[0].n).toBe(1000);
      await store.close();
      await close();
    });

    it("cleanup removes expired streams with their chunks, and keeps live ones", async () => {
      const { client, close } = mode.make();
      const short = new PostgresStreamStore(client, { ttlMs: 1 });
      const gone = uid("gone");
      const kept = uid("kept");
      await short.create(gone);
      await short.append(gone, "x");
      await short.complete(gone);
      const store = new PostgresStreamStore(client);
      await store.create(kept);
      await sleep(20);
      expect(await store.cleanup()).toBeGreaterThanOrEqual(1);
      expect(await store.getStatus(gone)).toBeNull();
      expect(await store.getStatus(kept)).toMatchObject({ state: "active" });
      const { rows } = await admin.query("SELECT count(*)::int AS n FROM aibind_stream_chunks WHERE id = $1", [gone]);
      expect(rows[0].n).toBe(0);
      await short.close();
      await store.close();
      await close();
    });

    it("stopSignal aborts when the stream is stopped", async () => {
      const { client, close } = mode.make();
      const store = new PostgresStreamStore(client);
      const id = uid("stop");
      await store.create(id);
      const signal = store.stopSignal(id);
      expect(signal.aborted).toBe(false);
      await store.stop(id);
      const until = Date.now() + 20_000;
      while (!signal.aborted && Date.now() < until) await sleep(20);
      expect(signal.aborted).toBe(true);
      await store.close();
      await close();
    });

    it("a reader here reads what another process writes, live and exactly", async () => {
      const { client, close } = mode.make();
      const store = new PostgresStreamStore(client);
      const id = uid("xproc");
      await store.create(id);
      const reading = collect(store.readFrom(id, 0));
      await writeFromChild(id, 40);
      const read = await reading;
      expect(read.map((c) => c.seq)).toEqual(Array.from({ length: 40 }, (_, k) => k + 1));
      expect(read.map((c) => c.data)).toEqual(Array.from({ length: 40 }, (_, k) => `c${k}`));
      await store.close();
      await close();
    });
  });
}

/** Another process appends `n` chunks to `id` one by one and completes it. */
function writeFromChild(id: string, n: number) {
  const index = fileURLToPath(new URL("../../index.js", import.meta.url));
  const code = `const { PostgresStreamStore } = await import(${JSON.stringify(index)});
    const store = new PostgresStreamStore(process.env.DATABASE_URL);
    for (let k = 0; k < ${n}; k++) { await store.append(${JSON.stringify(id)}, "c" + k); await new Promise((r) => setTimeout(r, 5)); }
    await store.complete(${JSON.stringify(id)}); await store.close();`;
  return new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "inherit", "inherit"] });
    child.on("exit", (status) => (status === 0 ? resolve() : reject(new Error(`writer exited ${status}`))));
  });
}

describe("on Citus, where statements go", () => {
  it("every statement the stores send is routed to one shard, but the shared check and cleanup", async () => {
    // postgres.js (it LISTENs, so the shared check of waiting readers runs), every
    // statement recorded with its parameters on its way out.
    const sent = new Map<string, unknown[]>();
    const sql = postgres(DATABASE_URL, { max: 4, onnotice: () => {} });
    const recorded = new Proxy(sql, {
      get(target, prop, receiver) {
        if (prop !== "unsafe") return Reflect.get(target, prop, receiver);
        return (text: string, params?: unknown[], options?: object) => {
          if (!sent.has(text)) sent.set(text, params ?? []);
          return target.unsafe(text, params as never, options);
        };
      },
    });
    const client = wrapPostgresJs(recorded);
    const store = new PostgresStreamStore(client, { citus: true, pollIntervalMs: 20 });
    const other = new PostgresStreamStore(client, { citus: true });
    const conversations = new PostgresConversationStore(client, { citus: true });
    const id = uid("plan");
    await store.create(id);
    const reading = collect(store.readFrom(id, 0));
    await sleep(1_500); // the reader waits: the shared check runs
    await store.append(id, "a");
    await other.append(id, "b"); // a store that did not create it looks it up first
    await store.getStatus(id);
    await store.complete(id);
    await reading;
    await store.cleanup();
    const session = uid("plan");
    await conversations.save(session, new ChatHistory([{ role: "user", content: "hi" }]));
    await conversations.load(session);
    await conversations.delete(session);
    await conversations.cleanup();
    await Promise.all([store.close(), other.close(), conversations.close()]);
    await sql.end();

    const kinds = [
      ["create", /_create\(/],
      ["append", /_append\(/],
      ["lookup", /AS at, /],
      ["status", /^SELECT state, error, total_chunks FROM/],
      ["finish", /^UPDATE \S+ SET state = /],
      ["read a page", /UNION ALL SELECT seq/],
      ["save", /^INSERT INTO \S+ \(session_id/],
      ["load", /^SELECT data FROM \S+ WHERE session_id/],
      ["delete", /^DELETE FROM \S+ WHERE session_id/],
      ["shared check (every waiting reader)", /json_to_recordset/, "multi"],
      ["stream cleanup", /^WITH gone AS \(DELETE FROM aibind_stream_status/, "multi"],
      ["conversation cleanup", /^WITH gone AS \(DELETE FROM aibind_conversations/, "multi"],
    ] as const;
    const statements = [...sent].filter(([text]) => /aibind_(stream|conv)/.test(text) && !/pg_notify\(\$1/.test(text));
    for (const [text, params] of statements) {
      const kind = kinds.find(([, pattern]) => pattern.test(text));
      expect(kind, `a statement of no known kind: ${text}`).toBeDefined();
      const { rows } = await admin.query(`EXPLAIN (COSTS OFF) ${text}`, params);
      const plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
      const tasks = [...plan.matchAll(/Task Count: (\d+)/g)].map((m) => Number(m[1]));
      if (kind?.[2] === "multi") {
        expect(tasks.length, plan).toBeGreaterThan(0); // distributed, over the shards
      } else {
        // One task, no subplan pulled through the coordinator: a router query.
        expect(plan, `${kind?.[0]}: ${text}`).not.toMatch(/Distributed Subplan|pull to coordinator/);
        expect(tasks, `${kind?.[0]}: ${text}\n${plan}`).toEqual([1]);
      }
    }
    for (const [name, pattern] of kinds) {
      expect(
        statements.some(([text]) => pattern.test(text)),
        `no ${name} statement was sent`,
      ).toBe(true);
    }
  });

  it("appends to many streams land on both workers, about half each", async () => {
    const store = new PostgresStreamStore(DATABASE_URL);
    const ids = Array.from({ length: 100 }, () => uid("spread"));
    await Promise.all(ids.map((id) => store.create(id)));
    await Promise.all(ids.flatMap((id) => Array.from({ length: 10 }, (_, k) => store.append(id, `${k}`))));
    await store.close();
    // Counted on each worker, in the shards it holds.
    const shards = await admin.query(
      `SELECT shard_name, nodeport FROM citus_shards WHERE table_name = 'aibind_stream_chunks'::regclass`,
    );
    const rows: { nodeport: number; n: number }[] = [];
    for (const url of (process.env.CITUS_WORKER_URLS ?? "").split(",")) {
      const port = Number(new URL(url).port);
      const worker = new pg.Client({ connectionString: url });
      await worker.connect();
      let n = 0;
      for (const s of shards.rows.filter((r) => r.nodeport === port)) {
        const counted = await worker.query(`SELECT count(*)::int AS n FROM ${s.shard_name} WHERE id = ANY($1)`, [ids]);
        n += counted.rows[0].n;
      }
      await worker.end();
      rows.push({ nodeport: port, n });
    }
    expect(rows.reduce((sum, r) => sum + r.n, 0)).toBe(1000);
    expect(rows).toHaveLength(2);
    for (const r of rows) {
      expect(r.n).toBeGreaterThan(250);
      expect(r.n).toBeLessThan(750);
    }
  });
});
