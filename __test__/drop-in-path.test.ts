// The drop-in path (a JS client such as pg.Pool) does less per call than going through
// the native store each time: a reader reads what is stored already in JS
// (lib/replay.cjs), a pg client's appends go out from JS (lib/appends.cjs,
// src/sent_appends.rs), and conversation loads and saves made while one is in flight go
// out as one combined statement (lib/lane.cjs). Each test checks the results exactly and
// counts the statements the client was asked to run.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore, wrapPostgresJs } from "../index.js";
import postgres from "postgres";
import { DATABASE_URL, adminPool, collect, eventually, freshSchema, rejection, uid } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

/** A pg.Pool whose statements are counted by kind; `refuse` makes matching ones fail. */
function countingPool() {
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });
  const counted = {
    pages: 0,
    combined: 0,
    single: 0,
    refuse: null as RegExp | null,
    query(config: string | { text: string }, params?: unknown[]) {
      const text = typeof config === "string" ? config : config.text;
      if (counted.refuse?.test(text))
        return Promise.reject(Object.assign(new Error("refused by the test"), { code: "XX000" }));
      if (text.includes("UNION ALL")) counted.pages++;
      else if (text.includes("unnest(")) counted.combined++;
      else counted.single++;
      return pool.query(config as string, params);
    },
    end: () => pool.end(),
  };
  return counted;
}

async function finishedStream(store: PostgresStreamStore, n: number) {
  const id = uid("replay");
  await store.create(id);
  await admin.query(
    `INSERT INTO ${tables.stream.chunksTable} (id, seq, data) SELECT $1, g, $2 || g FROM generate_series(1, $3::int) g`,
    [id, "chunk ", n],
  );
  await admin.query(`UPDATE ${tables.stream.statusTable} SET total_chunks = $2, state = 'done' WHERE id = $1`, [id, n]);
  return { id, expected: Array.from({ length: n }, (_, i) => ({ seq: i + 1, data: `chunk ${i + 1}` })) };
}

describe("a JS client's reader reads what is stored in JS", () => {
  it("replays 5,000 chunks exactly, one statement a page, and readers opened together share them", async () => {
    const client = countingPool();
    const store = new PostgresStreamStore(client, tables.stream);
    try {
      const { id, expected } = await finishedStream(store, 5000);
      expect(await collect(store.readFrom(id, 0))).toEqual(expected);
      expect(client.pages).toBe(3); // 2,000 + 2,000 + 1,000
      expect(await collect(store.readFrom(id, 4321))).toEqual(expected.slice(4321));
      client.pages = 0;
      const together = await Promise.all(Array.from({ length: 20 }, () => collect(store.readFrom(id, 0))));
      for (const got of together) expect(got).toEqual(expected);
      expect(client.pages).toBe(3);
    } finally {
      await store.close();
      await client.end();
    }
  });

  it("hands a large chunk, and the live end, to the native reader without missing or repeating one", async () => {
    const client = countingPool();
    const store = new PostgresStreamStore(client, tables.stream);
    try {
      const id = uid("large");
      await store.create(id);
      const large = "L".repeat(5000);
      const chunks = Array.from({ length: 30 }, (_, i) => (i === 14 ? large : `c${i + 1}`));
      for (const chunk of chunks) await store.append(id, chunk);
      const reader = store.readFrom(id, 0);
      const read: { seq: number; data: string }[] = [];
      for await (const chunk of reader) {
        read.push(chunk);
        if (chunk.seq === 30) break;
      }
      expect(read.map((c) => c.data)).toEqual(chunks);
      // Live: a reader at the end waits, then gets what is appended, then ends.
      const live = collect(store.readFrom(id, 30));
      await new Promise((resolve) => setTimeout(resolve, 200));
      await store.append(id, "after");
      await store.complete(id);
      expect(await live).toEqual([{ seq: 31, data: "after" }]);
    } finally {
      await store.close();
      await client.end();
    }
  });

  it("a page that fails with a lasting error rejects after the pages before it, as the native reader does", async () => {
    const client = countingPool();
    const store = new PostgresStreamStore(client, tables.stream);
    try {
      const { id } = await finishedStream(store, 10);
      client.refuse = /UNION ALL/;
      const err = await rejection(collect(store.readFrom(id, 0)));
      expect(err.code).toBe("DATABASE_ERROR");
      expect(err.message).toMatch(/refused by the test/);
      client.refuse = null;
      expect((await collect(store.readFrom(id, 0))).length).toBe(10);
    } finally {
      await store.close();
      await client.end();
    }
  });
});

describe("a pg client's appends go out from JS", () => {
  /** A real pg.Pool (so the store sees pg) whose clients note each statement's text. */
  function notingPool(options: pg.PoolConfig = {}) {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4, ...options });
    const texts: string[] = [];
    pool.on("connect", (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as { query: unknown }).query = (config: unknown, ...rest: unknown[]) => {
        texts.push(typeof config === "string" ? config : (config as { text: string }).text);
        return query(config, ...rest);
      };
    });
    return { pool, texts };
  }

  it("stores each chunk once, in order; a reader here gets every one; a refused one says so", async () => {
    const { pool, texts } = notingPool();
    const store = new PostgresStreamStore(pool, tables.stream);
    try {
      const id = uid("sent");
      await store.create(id);
      const read = collect(store.readFrom(id, 0));
      const seqs: number[] = [];
      for (let i = 0; i < 300; i++) seqs.push(await store.append(id, `chunk ${i}`));
      // Two streams at once: each its own gapless seqs.
      const other = uid("sent");
      await store.create(other);
      const both = await Promise.all([store.append(id, "chunk 300"), store.append(other, "first")]);
      await store.complete(id);
      expect(seqs).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
      expect(both).toEqual([301, 1]);
      const chunks = await read;
      expect(chunks).toEqual(Array.from({ length: 301 }, (_, i) => ({ seq: i + 1, data: `chunk ${i}` })));
      expect(await store.getStatus(id)).toEqual({ state: "done", totalChunks: 301 });
      // Every append went out as one statement (no lookup, no retry).
      expect(texts.filter((t) => t.includes("total_chunks + 1")).length).toBe(302);
      // A refused one says so, as the native path does; the stream stays as it was.
      const err = await rejection(store.append(id, "late"));
      expect(err.code).toBe("STREAM_NOT_ACTIVE");
      expect(err.message).toBe(`Stream "${id}" not found or not active`);
    } finally {
      await store.close();
      await pool.end();
    }
  });

  it("a lone producer asks Rust how to announce only in the notify choice's trials, checks a client out only now and then, and a reader on another pool hears of every chunk", async () => {
    // Outside its trials the notify choice's pick holds for the rest of its epoch: JS
    // makes those appends on the lease `appendBegin` gave, without a crossing each. A
    // trial's appends announced after their commits go out together (a few NOTIFYs, not
    // one each), and a call's pg client is kept for the next call made meanwhile.
    const { NativeStreamStore } = createRequire(import.meta.url)("../lib/binding.cjs");
    const appendBegin = NativeStreamStore.prototype.appendBegin;
    let begins = 0;
    NativeStreamStore.prototype.appendBegin = function (...args: unknown[]) {
      begins++;
      return appendBegin.apply(this, args);
    };
    const { pool, texts } = notingPool();
    let checkouts = 0;
    pool.on("acquire", () => checkouts++);
    const store = new PostgresStreamStore(pool, tables.stream);
    // Another pool: only the writer's announcements reach it within the test's time.
    const elsewhere = new PostgresStreamStore(DATABASE_URL, { ...tables.stream, pollIntervalMs: 60_000 });
    try {
      const id = uid("lease");
      await store.create(id);
      const got: { seq: number; data: string }[] = [];
      const read = (async () => {
        for await (const chunk of elsewhere.readFrom(id, 0)) got.push(chunk);
        return got;
      })();
      await eventually(async () => elsewhere.stats().listener === "confirmed");
      const n = 600;
      const [beginsBefore, checkoutsBefore] = [begins, checkouts];
      for (let i = 1; i <= n; i++) expect(await store.append(id, `c${i}`)).toBe(i);
      // At most three epochs (256 appends each, or longer) have begun: 16 trials and a
      // lease each, not one call an append.
      expect(begins - beginsBefore).toBeLessThan(n / 6);
      // Checkouts: the first, and those the hub's NOTIFYs make (an awaited append takes
      // the client its previous call kept).
      expect(checkouts - checkoutsBefore).toBeLessThan(40);
      // Appends announced after their commits (trials, or all of them on a machine so busy
      // that inside measured 2x slower), and the hub's NOTIFYs: at most one each, fewer
      // where a trial's went out together (within 5 ms of each other).
      const appends = texts.filter((t) => t.includes("total_chunks + 1"));
      const after = appends.filter((t) => !t.includes("pg_notify")).length;
      const notifies = texts.filter((t) => t.includes("pg_notify") && !t.includes("total_chunks + 1")).length;
      expect(appends.length).toBe(n);
      expect(notifies).toBeLessThanOrEqual(after);
      // The reader polls once a minute: only announcements (held ones too) bring it every
      // chunk before the stream completes.
      await eventually(async () => got.length === n, 10_000);
      await store.complete(id);
      expect(await read).toEqual(Array.from({ length: n }, (_, i) => ({ seq: i + 1, data: `c${i + 1}` })));
    } finally {
      NativeStreamStore.prototype.appendBegin = appendBegin;
      await store.close();
      await elsewhere.close();
      await pool.end();
    }
  }, 30_000);

  it("appends made at once through pg.Pool in another process reach a reader here by NOTIFY alone", async () => {
    // Each loop's second append is made while the first is in flight: it announces its
    // chunk after its commit, from the client's hub; the first may announce inside. The
    // reader polls once a minute and the writer never finishes, so only notifications
    // can bring the 60 chunks within the test's time.
    const ids = [uid("sent-a"), uid("sent-b")];
    const reader = new PostgresStreamStore(DATABASE_URL, { ...tables.stream, pollIntervalMs: 60_000 });
    const root = fileURLToPath(new URL("..", import.meta.url));
    const script = `
      import pg from "pg";
      import { PostgresStreamStore } from ${JSON.stringify(`${root}index.js`)};
      const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
      const store = new PostgresStreamStore(pool, ${JSON.stringify(tables.stream)});
      const ids = ${JSON.stringify(ids)};
      await Promise.all(ids.map((id) => store.create(id)));
      console.log("created");
      await new Promise((resolve) => process.stdin.once("data", resolve));
      for (let i = 1; i <= 30; i++) await Promise.all(ids.map((id) => store.append(id, "chunk " + i)));
      await new Promise((resolve) => setTimeout(resolve, 30_000)); // until killed
    `;
    const writer = spawn(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, DATABASE_URL },
      stdio: ["pipe", "pipe", "inherit"],
    });
    try {
      await new Promise((resolve, reject) => {
        writer.stdout.once("data", resolve);
        writer.once("exit", reject);
      });
      const reads = ids.map(async (id) => {
        const got: { seq: number; data: string }[] = [];
        for await (const chunk of reader.readFrom(id, 0)) if (got.push(chunk) === 30) break;
        return got;
      });
      await new Promise((resolve) => setTimeout(resolve, 300)); // the readers wait, listening
      writer.stdin.write("go\n");
      const expected = Array.from({ length: 30 }, (_, i) => ({ seq: i + 1, data: `chunk ${i + 1}` }));
      expect(await Promise.all(reads)).toEqual([expected, expected]);
    } finally {
      writer.kill();
      await reader.close();
    }
  }, 20_000);

  it("a store closed as soon as its append resolves still announces the chunk to a reader elsewhere", async () => {
    // Rust hears of a stored chunk once the appender's next statement is out; a store's
    // first append announces after its commit (the notify choice tries that way first).
    // The reader, in this process, polls once a minute: only the announcement from the
    // writer's process brings the chunk in time.
    const id = uid("closed-after");
    await admin.query(
      `INSERT INTO ${tables.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ($1, 'active', 0, $2)`,
      [id, Date.now() + 3_600_000],
    );
    const reader = new PostgresStreamStore(DATABASE_URL, { ...tables.stream, pollIntervalMs: 60_000 });
    const root = fileURLToPath(new URL("..", import.meta.url));
    const script = `
      import pg from "pg";
      import { PostgresStreamStore } from ${JSON.stringify(`${root}index.js`)};
      const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
      const store = new PostgresStreamStore(pool, ${JSON.stringify(tables.stream)});
      await store.append(${JSON.stringify(id)}, "last words");
      await store.close();
      await pool.end();
    `;
    try {
      const first = reader.readFrom(id, 0)[Symbol.asyncIterator]().next();
      await eventually(async () => reader.stats().readersWaiting === 1 && reader.stats().listener === "confirmed");
      const writer = spawn(process.execPath, ["--input-type=module", "-e", script], {
        env: { ...process.env, DATABASE_URL },
        stdio: ["ignore", "inherit", "inherit"],
      });
      const exited = new Promise((resolve) => writer.once("exit", resolve));
      expect(await exited).toBe(0);
      expect(await first).toEqual({ done: false, value: { seq: 1, data: "last words" } });
    } finally {
      await reader.close();
    }
  }, 20_000);

  it("a row whose seq the client parsed into something else rejects with MALFORMED_RESULT, naming the column", async () => {
    const { pool } = notingPool({ types: { getTypeParser: () => () => "not a number" } });
    const store = new PostgresStreamStore(pool, tables.stream);
    try {
      const id = uid("sent");
      await store.create(id);
      const err = await rejection(store.append(id, "x"));
      expect(err.code).toBe("MALFORMED_RESULT");
      expect(err.message).toMatch(/no value for column "seq" \(expected an integer\)/);
    } finally {
      await store.close();
      await pool.end();
    }
  });
});

describe("a JS client's conversation loads and saves go out combined when made at once", () => {
  for (const kind of ["pg.Pool", "a { query } object", "postgres.js"] as const) {
    it(`${kind}: 40 sessions saved and loaded at once, each exactly, one statement a wave`, async () => {
      const sql = kind === "postgres.js" ? postgres(DATABASE_URL, { max: 10, onnotice: () => {} }) : null;
      const pool = countingPool();
      // pg's own pool: named statements, rows as arrays, a kept client.
      const pgPool = kind === "pg.Pool" ? new pg.Pool({ connectionString: DATABASE_URL, max: 10 }) : null;
      pgPool?.on("connect", (c) => {
        const query = c.query.bind(c) as (...args: unknown[]) => unknown;
        (c as { query: unknown }).query = (config: unknown, ...rest: unknown[]) => {
          const text = typeof config === "string" ? config : (config as { text: string }).text;
          if (text.includes("unnest(")) pool.combined++;
          else pool.single++;
          return query(config, ...rest);
        };
      });
      const client = pgPool
        ? pgPool
        : sql
          ? (() => {
              const wrapped = wrapPostgresJs(sql);
              return {
                query(text: string, params?: unknown[]) {
                  if (text.includes("unnest(")) pool.combined++;
                  else pool.single++;
                  return wrapped.query(text, params);
                },
              };
            })()
          : pool;
      const store = new PostgresConversationStore(client, tables.conversation);
      try {
        const ids = Array.from({ length: 40 }, () => uid("conv"));
        const json = (id: string, n: number) =>
          JSON.stringify({ messages: [{ role: "user", content: `${id} ${n} ✓` }] });
        await Promise.all(ids.map((id) => store.saveJSON(id, json(id, 1))));
        // The same session saved twice at once: the later call wins, as one after another.
        await Promise.all([store.saveJSON(ids[0], json(ids[0], 2)), store.saveJSON(ids[0], json(ids[0], 3))]);
        const loaded = await Promise.all([...ids.map((id) => store.loadJSON(id)), store.loadJSON(uid("none"))]);
        expect(loaded).toEqual([json(ids[0], 3), ...ids.slice(1).map((id) => json(id, 1)), null]);
        // Each wave of calls made at once goes out as one combined statement (the calls
        // made in one turn go together, none ahead alone); a single statement at most:
        // the client's look for Citus.
        expect(pool.combined).toBe(3);
        expect(pool.single).toBeLessThanOrEqual(1);
      } finally {
        await store.close();
        await pool.end();
        await pgPool?.end();
        await sql?.end();
      }
    });
  }

  it("calls made just before close() go out before the store closes", async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
    const store = new PostgresConversationStore(pool, tables.conversation);
    const ids = [uid("closing"), uid("closing"), uid("closing")];
    try {
      // Calls made in the turn that closes the store, still waiting for their microtask.
      const saved = Promise.all(ids.map((id, i) => store.saveJSON(id, `"${i}"`)));
      const alone = uid("closing");
      const loaded = store.loadJSON(alone);
      await store.close();
      await saved;
      expect(await loaded).toBeNull();
      const reader = new PostgresConversationStore(pool, tables.conversation);
      expect(await Promise.all(ids.map((id) => reader.loadJSON(id)))).toEqual([`"0"`, `"1"`, `"2"`]);
      await reader.close();
    } finally {
      await pool.end();
    }
  });

  it("a combined statement that fails leaves each call to go alone, with its own outcome", async () => {
    const client = countingPool();
    const store = new PostgresConversationStore(client, tables.conversation);
    try {
      client.refuse = /unnest\(/;
      const ids = Array.from({ length: 10 }, () => uid("alone"));
      await Promise.all(ids.map((id) => store.saveJSON(id, `"${id}"`)));
      // Bad input among them still says what is wrong, and the others are stored.
      const results = await Promise.allSettled([store.saveJSON("", "x"), ...ids.map((id) => store.loadJSON(id))]);
      expect(results[0].status).toBe("rejected");
      expect(((results[0] as PromiseRejectedResult).reason as { code: string }).code).toBe("INVALID_ARGUMENT");
      expect(results.slice(1).map((r) => (r as PromiseFulfilledResult<string>).value)).toEqual(
        ids.map((id) => `"${id}"`),
      );
      expect(client.single).toBeGreaterThanOrEqual(20);
      // One session saved twice in one turn, each alone now: one after the other, the later wins.
      await Promise.all([store.saveJSON(ids[0], `"first"`), store.saveJSON(ids[0], `"second"`)]);
      expect(await store.loadJSON(ids[0])).toBe(`"second"`);
    } finally {
      await store.close();
      await client.end();
    }
  });
});
