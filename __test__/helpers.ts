// Shared by every test file: the database, the backends every suite runs over, and a
// schema of its own for each suite.
import { randomUUID } from "node:crypto";
import pg from "pg";
import postgres from "postgres";
import { schemaSql, wrapNeon, wrapPostgresJs, type PostgresClient } from "../index.js";

export const DATABASE_URL = process.env.DATABASE_URL ?? "";
if (!DATABASE_URL) {
  throw new Error("DATABASE_URL is not set: run the tests with `npm test`, which starts a PostgreSQL");
}

export const uid = (prefix = "t") => `${prefix}-${randomUUID()}`;

/** A client as an app would hand it to the store, and how to close it. */
export interface Backend {
  name: string;
  /** True when the store owns a Rust pool (the client is a connection string). */
  native: boolean;
  make(): Promise<{ client: string | PostgresClient; close(): Promise<void> }>;
}

export const backends: Backend[] = [
  {
    name: "connection string (Rust pool)",
    native: true,
    make: async () => ({ client: DATABASE_URL, close: async () => {} }),
  },
  {
    name: "pg.Pool",
    native: false,
    make: async () => {
      const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });
      return { client: pool, close: () => pool.end() };
    },
  },
  {
    name: "pg.Client",
    native: false,
    make: async () => {
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect();
      return { client, close: () => client.end() };
    },
  },
  {
    name: "postgres.js via wrapPostgresJs",
    native: false,
    make: async () => {
      const sql = postgres(DATABASE_URL, { max: 10, onnotice: () => {} });
      return { client: wrapPostgresJs(sql), close: () => sql.end() };
    },
  },
  {
    name: "postgres.js (prepare: false) via wrapPostgresJs",
    native: false,
    make: async () => {
      const sql = postgres(DATABASE_URL, { max: 10, prepare: false, onnotice: () => {} });
      return { client: wrapPostgresJs(sql), close: () => sql.end() };
    },
  },
  {
    name: "Neon-shaped sql(text, params) via wrapNeon",
    native: false,
    make: async () => {
      // Neon's HTTP driver: a function that resolves to the rows array.
      const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });
      const sql = (text: string, params?: unknown[]) => pool.query(text, params).then((r) => r.rows);
      return { client: wrapNeon(sql), close: () => pool.end() };
    },
  },
  {
    name: "Neon 1.x-shaped sql.query(text, params) via wrapNeon",
    native: false,
    make: async () => {
      const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });
      const sql = Object.assign(
        () => {
          throw new Error("only callable as a tagged template");
        },
        { query: (text: string, params?: unknown[]) => pool.query(text, params).then((r) => r.rows) },
      );
      return { client: wrapNeon(sql), close: () => pool.end() };
    },
  },
];

/** A direct pg pool for setting up and inspecting tables behind the stores' backs. */
export function adminPool() {
  return new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
}

/** The original package's tables, exactly as its README has apps create them (no index):
 *  for tests that check this package works on them. Everything else uses `schemaSql`. */
export const originalStreamDdl = (chunks: string, status: string) => `
  CREATE TABLE IF NOT EXISTS ${chunks} (id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (id, seq));
  CREATE TABLE IF NOT EXISTS ${status} (id TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'active', error TEXT,
    total_chunks INTEGER NOT NULL DEFAULT 0, expires_at BIGINT NOT NULL);`;

export const originalConversationDdl = (table: string) => `
  CREATE TABLE IF NOT EXISTS ${table} (session_id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL);`;

/** The package's own schema (`schemaSql`, what `migrate()` runs) for these table names. */
export const ddl = (names: { chunksTable?: string; statusTable?: string; conversationsTable?: string }) => schemaSql(names);

/** A fresh schema holding the documented tables; the option names that point at them. */
export async function freshSchema(admin: pg.Pool) {
  const schema = `t_${randomUUID().replace(/-/g, "").slice(0, 16)}`;
  await admin.query(`CREATE SCHEMA ${schema}`);
  const chunksTable = `${schema}.aibind_stream_chunks`;
  const statusTable = `${schema}.aibind_stream_status`;
  const table = `${schema}.aibind_conversations`;
  await admin.query(ddl({ chunksTable, statusTable, conversationsTable: table }));
  return {
    schema,
    stream: { chunksTable, statusTable },
    conversation: { table },
    drop: () => admin.query(`DROP SCHEMA ${schema} CASCADE`),
  };
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Appends the same chunk again while the attempt fails for a passing reason, as an app
 * retries (safe: it is stored once); a loaded machine may need more than one try.
 */
export async function appendAgain(store: { append(id: string, chunk: string): Promise<number> }, id: string, chunk: string) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await store.append(id, chunk);
    } catch (err) {
      if (!(err as { retryable?: boolean }).retryable || attempt >= 5) throw err;
      await sleep(100 * attempt);
    }
  }
}

/** Rejects with the error `promise` rejects with, or fails when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string; sqlState?: string; retryable?: boolean }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error("expected the promise to reject, but it resolved");
}

/** The connection string with an application_name, to find its connections in pg_stat_activity. */
export function urlWithApp(app: string) {
  const url = new URL(DATABASE_URL);
  url.searchParams.set("application_name", app);
  return url.href;
}

/** Resolves once `check` holds; rejects if it does not within `ms`. */
export async function eventually(check: () => Promise<boolean>, ms = 10_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await sleep(25);
  }
  throw new Error(`condition not met in ${ms} ms`);
}

/** Holds `id`'s row of `table` locked (FOR UPDATE) in a transaction of its own until `release()`. */
export async function lockRow(admin: pg.Pool, table: string, id: string) {
  const c = await admin.connect();
  await c.query("BEGIN");
  await c.query(`SELECT 1 FROM ${table} WHERE id = $1 FOR UPDATE`, [id]);
  return {
    release: async () => {
      await c.query("ROLLBACK");
      c.release();
    },
  };
}

/** Settles `promise`, with how long it took: its value, or its error. */
export async function timed<T>(promise: Promise<T>) {
  const started = Date.now();
  try {
    return { value: await promise, ms: Date.now() - started };
  } catch (error) {
    return { error: error as Error & { code?: string; retryable?: boolean }, ms: Date.now() - started };
  }
}
