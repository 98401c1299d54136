// A database of the benchmark's own in which the server's count of transactions can be
// read exactly, without waiting out the statistics' flush delays.
//
// pg_stat_database's xact_commit + xact_rollback counts every transaction of a database,
// but a backend reports its counts at most once a second, and an idle one only within
// ~10 s; a backend that exits reports at exit, before it leaves pg_stat_activity. So:
//   - everything counted runs in this database, created for the run (no one else's work,
//     not even another test run on the same server, is in its count; its tables have
//     autovacuum off, and its catalog does not change while rounds run, so no autovacuum
//     worker comes by);
//   - everything counted runs in child processes, which exit when done; the benchmark's
//     own process reads the count from a connection to ANOTHER database (not counted), and
//     touches this one only through short-lived connections, closed before a window opens;
//   - a window opens and closes when no backend is connected to this database: at that
//     point every transaction that happened in it has been reported.
// The count includes each child's connections being opened (a backend's start is a
// transaction) and, on a LISTEN connection, each time it takes in notifications while idle
// (PostgreSQL reads its notification queue inside a transaction: one per delivery, a few
// microseconds, no WAL, but counted): both are part of what the workload costs the server.
import pg from "pg";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Creates the database, with one set of the stores' tables (the original's schema) in
 * schema `b`. `admin` is a pg.Pool on the benchmark's database. Resolves { url, tables,
 * run(sql, params), backends(), settle(), transactions(), drop() }, or null when the
 * server does not let this user create a database.
 */
export async function makeCountedDb(admin, baseUrl) {
  const name = `aibind_bench_counted_${process.pid}`;
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (err) {
    console.error(`the transaction counts are not measured: cannot create a database (${err.message})`);
    return null;
  }
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  const off = "WITH (autovacuum_enabled = false, toast.autovacuum_enabled = false)";
  const db = {
    name,
    url: url.href,
    tables: {
      schema: "b",
      stream: { chunksTable: "b.aibind_stream_chunks", statusTable: "b.aibind_stream_status" },
      conversation: { table: "b.aibind_conversations" },
    },
    /** One statement on a connection of its own, closed before this resolves. */
    async run(sql, params) {
      const client = new pg.Client({ connectionString: url.href });
      await client.connect();
      try {
        return await client.query(sql, params);
      } finally {
        await client.end();
      }
    },
    async backends() {
      const { rows } = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1", [name]);
      return rows[0].n;
    },
    /** Waits until no backend is connected to the database (so all have reported). */
    async settle(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while ((await db.backends()) > 0) {
        if (Date.now() > deadline) throw new Error(`backends still connected to ${name} after ${timeoutMs} ms`);
        await sleep(20);
      }
    },
    /** The server's count of transactions in the database so far; call when settled. */
    async transactions() {
      const { rows } = await admin.query(
        "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1",
        [name],
      );
      return Number(rows[0].n);
    },
    async drop() {
      await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [name]);
      await admin.query(`DROP DATABASE IF EXISTS ${name}`);
    },
  };
  try {
    await db.run(`CREATE SCHEMA b;
      CREATE TABLE b.aibind_stream_chunks (id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (id, seq)) ${off};
      CREATE TABLE b.aibind_stream_status (id TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'active', error TEXT,
        total_chunks INTEGER NOT NULL DEFAULT 0, expires_at BIGINT NOT NULL) ${off};
      CREATE TABLE b.aibind_conversations (session_id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL) ${off};`);
  } catch (err) {
    await db.drop();
    throw err;
  }
  return db;
}

/**
 * Runs `work()` (which starts child processes on the counted database and resolves when
 * they have exited) between two readings of the count. Resolves { result, transactions }.
 */
export async function counted(db, work) {
  await db.settle();
  const before = await db.transactions();
  const result = await work();
  await db.settle();
  return { result, transactions: (await db.transactions()) - before };
}
