// The user's own time limits: a statement the server stopped by its statement_timeout or
// lock_timeout (not a cancel the store sent at its deadline) rejects at once with
// QUERY_TIMEOUT, retryable, instead of being tried again until queryTimeoutMs.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, freshSchema, lockRow, timed, uid } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

/** An append to a stream whose status row another transaction holds locked. */
async function appendLocked(store: PostgresStreamStore) {
  const id = uid();
  await store.create(id);
  const lock = await lockRow(admin, tables.stream.statusTable, id);
  try {
    return await timed(store.append(id, "x"));
  } finally {
    await lock.release();
  }
}

describe("the server's own time limits", () => {
  it("pg.Pool with statement_timeout: the append rejects at once with QUERY_TIMEOUT", async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4, statement_timeout: 300 });
    const store = new PostgresStreamStore(pool, { ...tables.stream, queryTimeoutMs: 10_000 });
    try {
      const { error, ms } = await appendLocked(store);
      expect(error).toMatchObject({ code: "QUERY_TIMEOUT", retryable: true, sqlState: "57014" });
      expect(ms).toBeLessThan(3_000);
    } finally {
      await store.close();
      await pool.end();
    }
  });

  it("pg.Pool with lock_timeout: the append rejects at once with QUERY_TIMEOUT", async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4, lock_timeout: 300 });
    const store = new PostgresStreamStore(pool, { ...tables.stream, queryTimeoutMs: 10_000 });
    try {
      const { error, ms } = await appendLocked(store);
      expect(error).toMatchObject({ code: "QUERY_TIMEOUT", retryable: true, sqlState: "55P03" });
      expect(ms).toBeLessThan(3_000);
    } finally {
      await store.close();
      await pool.end();
    }
  });

  it("a connection string with lock_timeout: the append rejects at once with QUERY_TIMEOUT", async () => {
    const url = `${DATABASE_URL}${DATABASE_URL.includes("?") ? "&" : "?"}options=-c%20lock_timeout%3D300`;
    const store = new PostgresStreamStore(url, { ...tables.stream, queryTimeoutMs: 10_000 });
    try {
      const { error, ms } = await appendLocked(store);
      expect(error).toMatchObject({ code: "QUERY_TIMEOUT", retryable: true, sqlState: "55P03" });
      expect(ms).toBeLessThan(3_000);
    } finally {
      await store.close();
    }
  });

  it("the store's own deadline still cancels and reports QUERY_TIMEOUT after queryTimeoutMs", async () => {
    const store = new PostgresStreamStore(new pg.Pool({ connectionString: DATABASE_URL, max: 4 }), {
      ...tables.stream,
      queryTimeoutMs: 1_500,
    });
    try {
      const { error, ms } = await appendLocked(store);
      expect(error).toMatchObject({ code: "QUERY_TIMEOUT", retryable: true });
      expect(ms).toBeGreaterThanOrEqual(1_400);
    } finally {
      await store.close();
    }
  });
});
