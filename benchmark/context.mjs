// What the benchmark's rows share: the database, the modes, child processes, fresh
// tables, the counted database (counted.mjs), what went wrong, and the clean-up.
import pg from "pg";
import { counted, makeCountedDb } from "./counted.mjs";
import { makeModes } from "./modes.mjs";
import { killAll, startChild } from "./procs.mjs";

const given = process.env.DATABASE_URL;
if (!given) throw new Error("DATABASE_URL is not set: run `npm run bench`");
export const url = given;

export const only = process.env.BENCH_ONLY; // a substring of figure labels: run just those
export const admin = new pg.Pool({ connectionString: url, max: 2 });
export const { modes, end: endModes } = makeModes(url);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
export const median = (values) => quantile(values, 0.5);
export const round2 = (x) => +x.toFixed(2);
export const childScript = new URL("./child.mjs", import.meta.url).pathname;
/**
 * A child.mjs process (see procs.mjs: a deadline, killed if the benchmark ends).
 * @param {string[]} args
 * @param {{ db?: string, timeoutMs?: number, node?: string[] }} [options]
 */
export const child = (args, { db = url, timeoutMs = 120_000, node = [] } = {}) =>
  startChild(childScript, args, { env: { ...process.env, DATABASE_URL: db }, timeoutMs, node });
/** `promise`, or a rejection if it has not settled within `ms`. */
export function within(ms, what, promise) {
  let timer;
  const late = new Promise(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not come within ${ms} ms`)), ms)),
  );
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
/** Kills the children if `promise` rejects (one of them failed), and rethrows. */
export async function guard(children, promise) {
  try {
    return await promise;
  } catch (err) {
    for (const c of children) c.kill();
    throw err;
  }
}

/** What went wrong in deliveries (missing, repeated, out of order): printed at the end,
 *  and the benchmark then exits with 1. */
export const problems = [];
export function noteProblems(what, mode, found) {
  if (found.length)
    problems.push(`${what} [${mode.key}]: ${found.length} problem(s), e.g. ${found.slice(0, 3).join("; ")}`);
}

export const liveSchemas = new Set(); // dropped at the end if a failure left them
export let schemas = 0;
/** The original package's tables, exactly as its README has apps create them (no index),
 *  for every mode: what an app that swaps the import has; the fair ground for the
 *  comparison. (`migrate()` adds indexes on `expires_at` that keep `cleanup` fast.) */
export async function freshTables() {
  const schema = `bench_${process.pid}_${schemas++}`;
  liveSchemas.add(schema);
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE; CREATE SCHEMA ${schema};
    CREATE TABLE ${schema}.aibind_stream_chunks (id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (id, seq));
    CREATE TABLE ${schema}.aibind_stream_status (id TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'active', error TEXT,
      total_chunks INTEGER NOT NULL DEFAULT 0, expires_at BIGINT NOT NULL);
    CREATE TABLE ${schema}.aibind_conversations (session_id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL);`);
  return {
    schema,
    stream: { chunksTable: `${schema}.aibind_stream_chunks`, statusTable: `${schema}.aibind_stream_status` },
    conversation: { table: `${schema}.aibind_conversations` },
    drop: async () => {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      liveSchemas.delete(schema);
    },
  };
}

// ------------------------------------------------------------------ issue 10: readers
// The rows below ask what readers cost the database, and how a live stream fares with
// many readers, many streams or a fast producer. Where the database's transactions are
// counted, the workload runs in child processes on a database of its own (counted.mjs):
// the server's own count, read when every backend of that database has exited and so
// reported it, not the stores' counts of their statements.

export let countedDbMade;
/** Where a counted workload runs: the counted database, or, if this user cannot create a
 *  database, fresh tables in the benchmark's own (and the counts are null). */
export async function countedPlace() {
  const db = await (countedDbMade ??= makeCountedDb(admin, url));
  if (db)
    return {
      url: db.url,
      tables: db.tables,
      run: (sql, params) => db.run(sql, params),
      count: (work) => counted(db, work),
      done: async () => {},
    };
  const t = await freshTables();
  const count = async (work) => ({ result: await work(), transactions: null });
  return { url, tables: t, run: (sql, params) => admin.query(sql, params), count, done: t.drop };
}
let streamsMade = 0;
/** A number no other stream of the run has. */
export const nextStream = () => streamsMade++;
/** A new active stream's id (unique across the run: the counted tables are kept). */
export async function activeStream(place, prefix) {
  const id = `${prefix}-${nextStream()}`;
  await place.run(
    `INSERT INTO ${place.tables.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ($1, 'active', 0, $2)`,
    [id, Date.now() + 1e8],
  );
  return id;
}
export const perChunk = (transactions, chunks) => (transactions === null ? null : +(transactions / chunks).toFixed(2));

/** Whatever a run leaves: children, schemas, the counted database, pools. */
export let cleaningUp;
export function cleanUp() {
  return (cleaningUp ??= (async () => {
    killAll();
    for (const schema of liveSchemas)
      await admin
        .query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
        .catch((err) => console.error(`could not drop ${schema}: ${err.message}`));
    const db = await countedDbMade?.catch(() => null);
    await db?.drop().catch((err) => console.error(`could not drop database ${db.name}: ${err.message}`));
    await endModes().catch(() => {});
    await admin.end().catch(() => {});
  })());
}
