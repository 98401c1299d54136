// A pool that heals, deadlines that hold, one error model on both backends: faults made
// with a real PostgreSQL, through our own TCP fault proxy where the network must fail.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStoreError, PostgresStreamStore, type PostgresClient } from "../index.js";
import { FaultProxy } from "./fixtures/fault-proxy.js";
import { DATABASE_URL, adminPool, eventually, freshSchema, lockRow, rejection, sleep, timed, uid, urlWithApp } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
let proxy: FaultProxy;

beforeAll(async () => {
  tables = await freshSchema(admin);
  const target = new URL(DATABASE_URL);
  proxy = await FaultProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
});

afterAll(async () => {
  await proxy.close();
  await tables.drop();
  await admin.end();
});

/** Each backend as a store's client, through the proxy; and how to end it. */
const backends = [
  { name: "connection string", make: (url: string) => ({ client: url as string | PostgresClient, end: async () => {} }) },
  {
    name: "pg.Pool",
    make: (url: string) => {
      // connectionTimeoutMillis, as a production pool should have: pg waits forever for a
      // connection blackholed in its handshake, and pool.end() with it.
      const pool = new pg.Pool({ connectionString: url, max: 8, connectionTimeoutMillis: 5_000 });
      pool.on("error", () => {}); // idle clients reset by the proxy
      return { client: pool as string | PostgresClient, end: () => pool.end() };
    },
  },
];

/** Holds a stream's status row locked in a transaction of its own until `release()`. */
const lockStream = (id: string) => lockRow(admin, tables.stream.statusTable, id);

async function chunkCount(id: string) {
  const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${tables.stream.chunksTable} WHERE id = $1`, [id]);
  return rows[0].n as number;
}

describe.each(backends)("a store that heals ($name)", (backend) => {
  it("one half-open connection, then all of them: working again within queryTimeoutMs plus a few seconds", async () => {
    const { client, end } = backend.make(proxy.url(DATABASE_URL));
    const store = new PostgresStreamStore(client, { ...tables.stream, queryTimeoutMs: 1_000 });
    const ids = Array.from({ length: 6 }, () => uid("heal"));
    for (const id of ids) await store.create(id);
    for (let round = 0; round < 3; round++) await Promise.all(ids.map((id) => store.append(id, "warm")));

    for (const which of ["one", "all"] as const) {
      const live = proxy.live();
      expect(live.length).toBeGreaterThan(0);
      if (which === "one") proxy.setLink(live[live.length - 1], "blackhole");
      else proxy.set("blackhole", { which: "existing" }); // new connections pass
      const started = Date.now();
      let recovered = 0;
      while (Date.now() - started < 1_000 + 4_000) {
        const results = await Promise.all(ids.map((id) => timed(store.append(id, which))));
        for (const r of results) {
          // No call outlives its deadline by more than 10%.
          expect(r.ms).toBeLessThan(1_100 + 150);
          if (r.error) expect([r.error.code, r.error.retryable]).toEqual(["QUERY_TIMEOUT", true]);
        }
        if (results.every((r) => !r.error)) {
          recovered = Date.now() - started;
          break;
        }
      }
      expect(recovered, `${which}: working again`).toBeGreaterThan(0);
      // And it stays healthy: the dead connections are gone, not handed out again.
      const after = await Promise.all(ids.map((id) => timed(store.append(id, "after"))));
      expect(after.filter((r) => r.error)).toEqual([]);
    }
    await store.close();
    await end();
  }, 40_000);
});

describe.each(backends)("deadlines that hold ($name)", (backend) => {
  it("a statement held past the timeout is cancelled on the server and never commits later", async () => {
    const { client, end } = backend.make(DATABASE_URL);
    const store = new PostgresStreamStore(client, { ...tables.stream, queryTimeoutMs: 800 });
    const id = uid("held");
    await store.create(id);
    await store.append(id, "one");
    const lock = await lockStream(id);
    const r = await timed(store.append(id, "held"));
    expect(r.error?.code).toBe("QUERY_TIMEOUT");
    expect(r.ms).toBeLessThan(800 * 1.1 + 100);
    // The server let go of it: nothing of ours still waits for the lock.
    await eventually(async () => {
      const { rows } = await admin.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
        [`%${tables.stream.statusTable}%`],
      );
      return rows[0].n === 0;
    }, 3_000);
    await lock.release();
    await sleep(300);
    expect(await chunkCount(id)).toBe(1);
    expect((await store.getStatus(id))?.totalChunks).toBe(1);
    await store.close();
    await end();
  });

  it("a locked stream does not slow the appends to other streams", async () => {
    const { client, end } = backend.make(DATABASE_URL);
    const store = new PostgresStreamStore(client, { ...tables.stream, queryTimeoutMs: 3_000 });
    const locked = uid("locked");
    const free = Array.from({ length: 5 }, () => uid("free"));
    for (const id of [locked, ...free]) await store.create(id);
    const lock = await lockStream(locked);
    const held = timed(store.append(locked, "waits"));
    const heldLater = timed(store.append(locked, "waits too"));
    await sleep(50);
    const started = Date.now();
    const rounds = [];
    for (let round = 0; round < 10; round++) rounds.push(...(await Promise.all(free.map((id) => store.append(id, `r${round}`)))));
    const freeMs = Date.now() - started;
    expect(rounds.length).toBe(50);
    // Fifty appends, ten round trips: nowhere near the held stream's wait.
    expect(freeMs).toBeLessThan(1_500);
    await lock.release();
    // The held stream's appends then go through, in call order.
    expect((await held).value).toBe(1);
    expect((await heldLater).value).toBe(2);
    const { rows } = await admin.query(`SELECT data FROM ${tables.stream.chunksTable} WHERE id = $1 ORDER BY seq`, [locked]);
    expect(rows.map((r) => r.data)).toEqual(["waits", "waits too"]);
    await store.close();
    await end();
  });
});

describe("a pg.Pool connection blackholed in its handshake", () => {
  it("fails the call at queryTimeoutMs; with connectionTimeoutMillis, pool.end() still resolves", async () => {
    const pool = new pg.Pool({ connectionString: proxy.url(DATABASE_URL), max: 2, connectionTimeoutMillis: 1_500 });
    pool.on("error", () => {});
    const store = new PostgresStreamStore(pool as PostgresClient, { ...tables.stream, queryTimeoutMs: 1_000 });
    proxy.set("blackhole", { which: "new" }); // every new connection: accepted, then silence
    try {
      const { error, ms } = await timed(store.getStatus(uid("handshake")));
      expect([error?.code, error?.retryable]).toEqual(["CONNECTION_ERROR", true]);
      expect(ms).toBeLessThan(1_000 * 1.1 + 150);
    } finally {
      proxy.set("pass", { which: "new" });
    }
    await store.close();
    const { ms } = await timed(pool.end());
    expect(ms).toBeLessThan(3_000); // the handshake gave up at connectionTimeoutMillis
  });
});

describe("deadlines under queueing", () => {
  it("connection string, one connection held up: every queued call settles within its deadline", async () => {
    const store = new PostgresStreamStore(DATABASE_URL, { ...tables.stream, poolSize: 1, queryTimeoutMs: 1_000 });
    const locked = uid("q-locked");
    const other = uid("q-other");
    await store.create(locked);
    await store.create(other);
    const lock = await lockStream(locked);
    const held = timed(store.append(locked, "x")); // takes the only connection, waiting for the lock
    await sleep(20);
    const queued = await Promise.all(Array.from({ length: 30 }, (_, i) => timed(store.append(other, `q${i}`))));
    for (const r of queued) {
      expect(r.ms).toBeLessThan(1_000 * 1.1 + 100);
      if (r.error) expect(r.error.retryable).toBe(true);
    }
    expect((await held).error?.code).toBe("QUERY_TIMEOUT");
    await lock.release();
    // Every resolved append is stored at its seq; the seqs have no gap.
    const seqs = queued.flatMap((r) => (r.error === undefined ? [r.value as number] : []));
    const { rows } = await admin.query(`SELECT seq FROM ${tables.stream.chunksTable} WHERE id = $1 ORDER BY seq`, [other]);
    expect(rows.map((r) => r.seq)).toEqual(rows.map((_r, i) => i + 1));
    for (const seq of seqs) expect(rows.map((r) => r.seq)).toContain(seq);
    await store.close();
  });
});

describe("one error model on both backends", () => {
  const pools: pg.Pool[] = [];
  afterAll(async () => {
    for (const pool of pools) await pool.end().catch(() => {});
  });
  const over = (url: string, name: string): string | PostgresClient => {
    if (name === "connection string") return url;
    const pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: 0 });
    pool.on("error", () => {});
    pools.push(pool);
    return pool;
  };
  const withPath = (path: string) => {
    const url = new URL(DATABASE_URL);
    url.pathname = path;
    return url.href;
  };
  const cases: Array<{ condition: string; code: string; retryable: boolean; sqlState?: string; message?: RegExp; run(name: string): Promise<unknown> }> = [
    {
      condition: "a database that does not exist (3D000)",
      code: "CONNECTION_ERROR",
      retryable: false,
      sqlState: "3D000",
      run: (name) => new PostgresStreamStore(over(withPath("/no_such_db"), name), tables.stream).getStatus("x"),
    },
    {
      condition: "a role that does not exist (28000)",
      code: "CONNECTION_ERROR",
      retryable: false,
      sqlState: "28000",
      run: (name) => {
        const url = new URL(DATABASE_URL);
        url.username = "no_such_role";
        return new PostgresStreamStore(over(url.href, name), tables.stream).getStatus("x");
      },
    },
    {
      condition: "nothing listening",
      code: "CONNECTION_ERROR",
      retryable: true,
      message: /could not connect/,
      run: (name) => new PostgresStreamStore(over("postgres://postgres@127.0.0.1:1/test", name), { ...tables.stream, connectTimeoutMs: 2_000 }).getStatus("x"),
    },
    {
      condition: "a missing table (42P01)",
      code: "DATABASE_ERROR",
      retryable: false,
      sqlState: "42P01",
      run: (name) => new PostgresStreamStore(over(DATABASE_URL, name), { statusTable: "no_such_table_here" }).getStatus("x"),
    },
    {
      condition: "a statement cancelled on the server (57014)",
      code: "QUERY_TIMEOUT",
      retryable: true,
      sqlState: "57014",
      run: async (name) => {
        const store = new PostgresStreamStore(over(DATABASE_URL, name), tables.stream);
        const id = uid("cancel");
        await store.create(id);
        const lock = await lockStream(id);
        // complete() waits for the lock (an append would settle itself: see exactly-once).
        const call = store.complete(id);
        call.catch(() => {});
        await eventually(async () => (await admin.query("SELECT pg_cancel_backend(pid) AS c FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%SET state%'")).rows.some((r) => r.c));
        await lock.release();
        return call;
      },
    },
    {
      condition: "the connection terminated mid-statement (57P01)",
      code: "CONNECTION_ERROR",
      retryable: true,
      message: /lost the connection|connection broke/,
      run: async (name) => {
        const store = new PostgresStreamStore(over(DATABASE_URL, name), tables.stream);
        const id = uid("terminate");
        await store.create(id);
        const lock = await lockStream(id);
        const call = store.complete(id);
        call.catch(() => {});
        await eventually(async () => (await admin.query("SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%SET state%'")).rows.some((r) => r.t));
        await lock.release();
        return call;
      },
    },
  ];
  describe.each(["connection string", "pg.Pool"])("over %s", (name) => {
    it.each(cases)("$condition: $code", async ({ code, retryable, sqlState, message, run }) => {
      const err = await rejection(run(name));
      expect(err).toBeInstanceOf(PostgresStoreError);
      expect(err.name).toBe("PostgresStoreError");
      expect([err.code, err.retryable]).toEqual([code, retryable]);
      if (sqlState) expect(err.sqlState).toBe(sqlState);
      if (message) expect(err.message).toMatch(message);
    }, 20_000);
  });

  it("an exhausted pg.Pool: CONNECTION_ERROR, retryable, as the Rust pool's", async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    const store = new PostgresStreamStore(pool, { ...tables.stream, queryTimeoutMs: 500 });
    const held = await pool.connect(); // the pool's only client, taken
    const err = await rejection(store.getStatus("x"));
    expect([err instanceof PostgresStoreError, err.code, err.retryable]).toEqual([true, "CONNECTION_ERROR", true]);
    expect(err.message).toMatch(/no connection of the client's pool was free within queryTimeoutMs \(500 ms\)/);
    held.release();
    expect(await store.getStatus("x")).toBeNull();
    await pool.end();
  });

  it("errors of every kind are instances of PostgresStoreError, wrong `this` included", async () => {
    const store = new PostgresStreamStore(DATABASE_URL, tables.stream);
    const { append } = store;
    const err = await rejection(append.call({} as never, "x", "y"));
    expect(err).toBeInstanceOf(PostgresStoreError);
    expect(err.code).toBe("INVALID_ARGUMENT");
    expect(await rejection(store.create(42 as never))).toBeInstanceOf(PostgresStoreError);
    const id = uid("exists");
    await store.create(id);
    const exists = await rejection(store.create(id));
    expect([exists instanceof PostgresStoreError, exists.code, exists.message]).toEqual([true, "STREAM_EXISTS", `Stream "${id}" already exists`]);
    await store.close();
    expect(await rejection(store.getStatus(id))).toBeInstanceOf(PostgresStoreError);
  });
});

describe("checked values", () => {
  const rowsOf = (rows: unknown[]): PostgresClient => ({ query: async () => ({ rows }) }) as PostgresClient;
  it.each([
    ["total_chunks 2^40", [{ state: "active", error: null, total_chunks: 2 ** 40 }]],
    ["total_chunks -1", [{ state: "active", error: null, total_chunks: -1 }]],
    ["total_chunks '99999999999' (a string)", [{ state: "active", error: null, total_chunks: "99999999999" }]],
    ["total_chunks 2n ** 40n (a BigInt)", [{ state: "active", error: null, total_chunks: 2n ** 40n }]],
  ])("a client's %s is MALFORMED_RESULT, never wrapped", async (_name, rows) => {
    const err = await rejection(new PostgresStreamStore(rowsOf(rows)).getStatus("x"));
    expect(err.code).toBe("MALFORMED_RESULT");
    expect(err.message).toMatch(/total_chunks/);
  });

  it("a seq of -1 from a client is MALFORMED_RESULT", async () => {
    expect((await rejection(new PostgresStreamStore(rowsOf([{ seq: -1 }])).append("x", "y"))).code).toBe("MALFORMED_RESULT");
  });

  it("toJSON() must return a string", async () => {
    const store = new PostgresConversationStore(DATABASE_URL, tables.conversation);
    const err = await rejection(store.save(uid("s"), { toJSON: () => 42 } as never));
    expect([err.code, err.message]).toEqual(["INVALID_ARGUMENT", "chat.toJSON() must return a string (ChatHistory's JSON), got a number"]);
    await store.close();
  });
});

describe("close() and connections", () => {
  it("resolves once the store's pool has closed its connections", async () => {
    const app = uid("closing").slice(0, 40);
    const store = new PostgresStreamStore(urlWithApp(app), { ...tables.stream, poolSize: 4 });
    const ids = Array.from({ length: 8 }, () => uid("c"));
    await Promise.all(ids.map((id) => store.create(id)));
    await Promise.all(ids.map((id) => store.getStatus(id)));
    const count = async () =>
      (await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [app])).rows[0].n as number;
    expect(await count()).toBeGreaterThan(0);
    await store.close();
    // The sockets are closed when close() resolves; the server takes a moment to see it.
    await eventually(async () => (await count()) === 0, 2_000);
  });

  it("a pg.Pool store that timed out still lets pool.end() resolve", async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    const store = new PostgresStreamStore(pool, { ...tables.stream, queryTimeoutMs: 1_000 });
    const id = uid("end");
    await store.create(id);
    const lock = await lockStream(id);
    expect((await rejection(store.append(id, "x"))).code).toBe("QUERY_TIMEOUT");
    await lock.release();
    const ended = await Promise.race([pool.end().then(() => "ended"), sleep(3_000).then(() => "hung")]);
    expect(ended).toBe("ended");
  });
});
