// What the stores do with clients that misbehave, options that are wrong, and database
// errors: always a clear rejected promise with a stable code, never a crash, and the
// store keeps working for the next call.
import { createServer } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore, type PostgresClient } from "../index.js";
import { DATABASE_URL, adminPool, freshSchema, rejection, uid } from "./helpers.js";

const admin = adminPool();
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await pool.end();
  await admin.end();
});

/** A client that misbehaves on the first call only, then passes through to pg. */
function flaky(misbehave: () => unknown): PostgresClient {
  let calls = 0;
  return {
    query(sql, params) {
      calls += 1;
      if (calls === 1) return misbehave() as Promise<{ rows: [] }>;
      return pool.query(sql, params);
    },
  };
}

describe("time limits", () => {
  it("a query() that never settles rejects with QUERY_TIMEOUT after queryTimeoutMs, then the store works again", async () => {
    let calls = 0;
    let lateSettle: (value: unknown) => void = () => {};
    const stuck: PostgresClient = {
      query(sql, params) {
        calls += 1;
        if (calls === 1) return new Promise((resolve) => (lateSettle = resolve as (value: unknown) => void)) as Promise<{ rows: [] }>;
        return pool.query(sql, params);
      },
    };
    const store = new PostgresStreamStore(stuck, { ...tables.stream, queryTimeoutMs: 200 });
    const id = uid();
    await admin.query(`INSERT INTO ${tables.stream.statusTable} (id, expires_at) VALUES ($1, $2)`, [id, Date.now() + 60_000]);
    const started = Date.now();
    const err = await rejection(store.append(id, "x"));
    expect(err.code).toBe("QUERY_TIMEOUT");
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/queryTimeoutMs \(200 ms\)/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    // The client answering late changes nothing.
    lateSettle({ rows: [{ seq: 99 }] });
    expect(await store.append(id, "y")).toBe(1);
    await store.close();
  });

  it("a statement the server holds up (a lock) is stopped at queryTimeoutMs, not stored, and the store goes on", async () => {
    const store = new PostgresStreamStore(DATABASE_URL, { ...tables.stream, queryTimeoutMs: 1_000 });
    const id = uid();
    await store.create(id);
    const locker = await admin.connect();
    await locker.query("BEGIN");
    await locker.query(`SELECT 1 FROM ${tables.stream.statusTable} WHERE id = $1 FOR UPDATE`, [id]);
    const err = await rejection(store.append(id, "held"));
    await locker.query("ROLLBACK");
    locker.release();
    expect(err.code).toBe("QUERY_TIMEOUT");
    expect(err.retryable).toBe(true);
    expect(await store.append(id, "next")).toBe(1);
    expect(await store.getStatus(id)).toEqual({ state: "active", error: undefined, totalChunks: 1 });
    await store.close();
  });

  it("a server that accepts connections but never answers fails retryably within the limits", async () => {
    const silent = createServer(() => {}); // accepts, says nothing
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as { port: number };
    const store = new PostgresStreamStore(`postgres://postgres@127.0.0.1:${port}/db`, { connectTimeoutMs: 200, queryTimeoutMs: 1_000 });
    const started = Date.now();
    const err = await rejection(store.create(uid()));
    expect(["CONNECTION_ERROR", "QUERY_TIMEOUT"]).toContain(err.code);
    expect(err.retryable).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
    await store.close();
    silent.close();
  });

  it("refuses time limits that are not a positive number of milliseconds", () => {
    for (const [option, value] of [["queryTimeoutMs", 0], ["queryTimeoutMs", -5], ["connectTimeoutMs", Number.NaN], ["retryReadsForMs", -1]] as const) {
      for (const client of [DATABASE_URL, pool]) {
        let err: (Error & { code?: string }) | undefined;
        try {
          new PostgresStreamStore(client, { [option]: value });
        } catch (e) {
          err = e as Error & { code?: string };
        }
        expect(err?.code, `${option}: ${value}`).toBe("INVALID_OPTION");
        expect(err?.message).toContain(option);
      }
    }
  });
});

describe("broken JS clients", () => {
  const cases: Array<[string, () => unknown, string, RegExp]> = [
    ["throws synchronously", () => { throw new Error("sync boom"); }, "CLIENT_ERROR", /sync boom/],
    ["throws a non-Error", () => { throw "a string"; }, "CLIENT_ERROR", /a string/],
    ["rejects", () => Promise.reject(new Error("async boom")), "CLIENT_ERROR", /async boom/],
    ["rejects with undefined", () => Promise.reject(undefined), "CLIENT_ERROR", /undefined/],
    ["rejects with a SQLSTATE", () => Promise.reject(Object.assign(new Error("relation missing"), { code: "42P01" })), "DATABASE_ERROR", /relation missing/],
    ["resolves to undefined", () => Promise.resolve(undefined), "MALFORMED_RESULT", /rows array.*undefined/],
    ["resolves to a bare array", () => Promise.resolve([{ seq: 1 }]), "MALFORMED_RESULT", /rows array.*an array/],
    ["resolves to rows that are not an array", () => Promise.resolve({ rows: "nope" }), "MALFORMED_RESULT", /rows array/],
    ["returns a non-promise", () => 42, "MALFORMED_RESULT", /number/],
    ["resolves to rows of the wrong shape", () => Promise.resolve({ rows: [7] }), "MALFORMED_RESULT", /not an object/],
    ["resolves to rows of the wrong types", () => Promise.resolve({ rows: [{ seq: "seven", state: 7 }] }), "MALFORMED_RESULT", /"(seq|state)"/],
    ["resolves to a row missing the column", () => Promise.resolve({ rows: [{ other: 1 }] }), "MALFORMED_RESULT", /"(seq|state)"/],
  ];

  it.each(cases)("query() %s: a clear rejection, then the store works again", async (_name, misbehave, code, message) => {
    const store = new PostgresStreamStore(flaky(misbehave), tables.stream);
    const id = uid();
    await admin.query(`INSERT INTO ${tables.stream.statusTable} (id, expires_at) VALUES ($1, $2)`, [id, Date.now() + 60_000]);
    const err = await rejection(store.append(id, "x"));
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    // The next call goes through.
    expect(await store.append(id, "y")).toBe(1);
    await store.close();
  });

  it("reads ahead while a page is handed out; a failure ahead surfaces in order, or not at all if the reader left", async () => {
    const id = uid();
    await admin.query(`INSERT INTO ${tables.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ($1, 'done', 2500, $2)`, [id, Date.now() + 60_000]);
    await admin.query(`INSERT INTO ${tables.stream.chunksTable} (id, seq, data) SELECT $1, g, 'c' || g FROM generate_series(1, 2500) g`, [id]);
    let pages = 0;
    const failingSecondPage: PostgresClient = {
      query(sql, params) {
        if (sql.includes("UNION ALL") && ++pages === 2) return Promise.reject(new Error("page two is lost"));
        return pool.query(sql, params);
      },
    };
    const store = new PostgresStreamStore(failingSecondPage, tables.stream);
    // Left after the first chunk, while page two is being fetched (and fails): nothing
    // is left unhandled.
    for await (const chunk of store.readFrom(id, 0)) {
      expect(chunk.seq).toBe(1);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Read on: every chunk of page one comes first, then the failure.
    pages = 0;
    const seen: number[] = [];
    const err = await rejection(
      (async () => {
        for await (const chunk of store.readFrom(id, 0)) seen.push(chunk.seq);
      })(),
    );
    expect(seen).toEqual(Array.from({ length: 2000 }, (_, i) => i + 1));
    expect(err.code).toBe("CLIENT_ERROR");
    expect(err.message).toMatch(/page two is lost/);
    await store.close();
  });

  it("yields chunks in seq order whatever order the rows of a page come in", async () => {
    const id = uid();
    await admin.query(`INSERT INTO ${tables.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ($1, 'done', 50, $2)`, [id, Date.now() + 60_000]);
    await admin.query(`INSERT INTO ${tables.stream.chunksTable} (id, seq, data) SELECT $1, g, 'c' || g FROM generate_series(1, 50) g`, [id]);
    const shuffling: PostgresClient = {
      async query(sql, params) {
        const result = await pool.query(sql, params);
        return sql.includes("UNION ALL") ? { rows: [...result.rows].reverse() } : result;
      },
    };
    const store = new PostgresStreamStore(shuffling, tables.stream);
    const chunks = [];
    for await (const chunk of store.readFrom(id, 0)) chunks.push(chunk);
    expect(chunks.map((c) => c.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(chunks.every((c) => c.data === `c${c.seq}`)).toBe(true);
    await store.close();
  });

  it("keeps the SQLSTATE of a driver's database error", async () => {
    const store = new PostgresStreamStore(pool, { chunksTable: "no_such_chunks", statusTable: "no_such_status" });
    const err = await rejection(store.create(uid()));
    expect(err.code).toBe("DATABASE_ERROR");
    expect(err.sqlState).toBe("42P01");
    expect(err.message).toMatch(/no_such_status/);
    // A missing table says how to create it, whichever client reported it.
    expect(err.message).toContain('run `npx @aibind-rs/postgres migrate --url "$DATABASE_URL"`');
    await store.close();
  });
});

describe("database errors through the Rust pool", () => {
  it("carry code DATABASE_ERROR, the SQLSTATE and PostgreSQL's message (a missing table: how to create it)", async () => {
    const store = new PostgresStreamStore(DATABASE_URL, { chunksTable: "no_such_chunks", statusTable: "no_such_status" });
    const err = await rejection(store.getStatus(uid()));
    expect(err.code).toBe("DATABASE_ERROR");
    expect(err.sqlState).toBe("42P01");
    expect(err.message).toBe(
      'relation "no_such_status" does not exist; the stores never create their tables: run ' +
        '`npx @aibind-rs/postgres migrate --url "$DATABASE_URL"` (or `await migrate(client)` in your code) once before using them',
    );
    await store.close();
  });

  it("reports an unreachable server as CONNECTION_ERROR", async () => {
    const store = new PostgresConversationStore("postgres://postgres@127.0.0.1:1/nowhere");
    const err = await rejection(store.loadJSON("x"));
    expect(err.code).toBe("CONNECTION_ERROR");
    expect(err.message).toMatch(/connect/i);
    // A refused connection names where it went.
    expect(err.message).toMatch(/Connection refused.*nothing accepts connections at 127\.0\.0\.1:1; is PostgreSQL running there/);
    await store.close();
  });
});

describe("constructor input", () => {
  it("refuses clients that are neither a connection string nor a { query } object", () => {
    for (const bad of [42, {}, { query: "not a function" }, [], true]) {
      expect(() => new PostgresStreamStore(bad as unknown as string)).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT", message: expect.stringMatching(/connection string or an object with a query/) }),
      );
    }
  });

  it("refuses a malformed connection string without echoing it", () => {
    let caught: (Error & { code?: string }) | undefined;
    try {
      new PostgresStreamStore("postgres://user:s3cret@host:notaport/db");
    } catch (err) {
      caught = err as Error & { code?: string };
    }
    expect(caught?.code).toBe("INVALID_ARGUMENT");
    expect(caught?.message).toMatch(/connection string is not valid/);
    expect(caught?.message).not.toMatch(/s3cret/);
  });

  it("accepts a URL object", async () => {
    const store = new PostgresStreamStore(new URL(DATABASE_URL), tables.stream);
    expect(await store.getStatus(uid())).toBeNull();
    await store.close();
  });

  it("refuses table names that are not plain or schema-qualified identifiers", () => {
    for (const [option, value] of [
      ["chunksTable", "chunks; DROP TABLE aibind_stream_status; --"],
      ["statusTable", "a.b.c"],
      ["chunksTable", "1table"],
      ["statusTable", '"quoted"'],
      ["chunksTable", ""],
    ]) {
      expect(() => new PostgresStreamStore(pool, { [option]: value })).toThrow(
        expect.objectContaining({ code: "INVALID_OPTION", message: expect.stringContaining(option) }),
      );
    }
    expect(() => new PostgresConversationStore(pool, { table: "x' OR '1'='1" })).toThrow(
      expect.objectContaining({ code: "INVALID_OPTION", message: expect.stringContaining('"table"') }),
    );
  });

  it("refuses negative, NaN or zero durations and a zero pool size", () => {
    const bad: Array<[object, string]> = [
      [{ ttlMs: -1 }, "ttlMs"],
      [{ ttlMs: Number.NaN }, "ttlMs"],
      [{ pollIntervalMs: 0 }, "pollIntervalMs"],
      [{ staleAfterMs: -5 }, "staleAfterMs"],
    ];
    for (const [options, name] of bad) {
      expect(() => new PostgresStreamStore(pool, options)).toThrow(
        expect.objectContaining({ code: "INVALID_OPTION", message: expect.stringContaining(name) }),
      );
    }
    expect(() => new PostgresConversationStore(DATABASE_URL, { poolSize: 0 })).toThrow(
      expect.objectContaining({ code: "INVALID_OPTION", message: expect.stringContaining("poolSize") }),
    );
    expect(() => new PostgresStreamStore(pool, "fast" as unknown as object)).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT" }),
    );
  });
});
