// Schema tooling: schemaSql, migrate (through a connection string and a JS client) and the
// `aibind-postgres migrate` command; run twice on a fresh database, and on tables made by
// hand from the original's README.
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore, migrate, schemaSql } from "../index.js";
import { DATABASE_URL, adminPool, collect, uid } from "./helpers.js";

const run = promisify(execFile);
const cli = fileURLToPath(new URL("../cli.mjs", import.meta.url));
const admin = adminPool();
const schemas: string[] = [];

afterAll(async () => {
  for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  await admin.end();
});

async function freshEmptySchema() {
  const schema = `m_${randomUUID().replace(/-/g, "").slice(0, 16)}`;
  await admin.query(`CREATE SCHEMA ${schema}`);
  schemas.push(schema);
  return {
    schema,
    names: { chunksTable: `${schema}.chunks`, statusTable: `${schema}.status`, conversationsTable: `${schema}.convs` },
  };
}

async function tablesAndIndexes(schema: string) {
  const { rows } = await admin.query(
    `SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = $1 ORDER BY c.relname`,
    [schema],
  );
  return rows.map((r) => `${r.relkind}:${r.relname}`);
}

/** Both stores on the migrated tables, used end to end. */
async function useStores(client: string | pg.Pool, names: { chunksTable: string; statusTable: string; conversationsTable: string }) {
  const streams = new PostgresStreamStore(client, { chunksTable: names.chunksTable, statusTable: names.statusTable });
  const conversations = new PostgresConversationStore(client, { table: names.conversationsTable });
  const id = uid("mig");
  await streams.create(id);
  await streams.append(id, "hello");
  await streams.complete(id);
  expect(await collect(streams.readFrom(id, 0))).toEqual([{ seq: 1, data: "hello" }]);
  await conversations.saveJSON("s", "{}");
  expect(await conversations.loadJSON("s")).toBe("{}");
  await streams.close();
  await conversations.close();
}

describe("schemaSql", () => {
  it("is the original's tables for the given names (and their schema), with the cleanup indexes, each statement idempotent", () => {
    const sql = schemaSql({ chunksTable: "app.chunks", statusTable: "app.status", conversationsTable: "app.convs" });
    expect(sql).toContain("CREATE TABLE IF NOT EXISTS app.chunks (");
    expect(sql).toContain("PRIMARY KEY (id, seq)");
    expect(sql).toContain("state TEXT NOT NULL DEFAULT 'active'");
    expect(sql).toContain("CREATE INDEX IF NOT EXISTS status_expires_at_idx ON app.status (expires_at)");
    expect(sql).toContain("CREATE TABLE IF NOT EXISTS app.convs (");
    expect(sql).toMatch(/^CREATE SCHEMA IF NOT EXISTS app;/);
    expect(sql.match(/IF NOT EXISTS/g)).toHaveLength(6);
    expect(schemaSql()).toContain("CREATE TABLE IF NOT EXISTS aibind_stream_status (");
  });

  it("refuses table names that are not identifiers", () => {
    expect(() => schemaSql({ statusTable: "x; DROP TABLE y" })).toThrow(expect.objectContaining({ code: "INVALID_OPTION" }));
  });
});

describe.each([
  { name: "a connection string", client: () => DATABASE_URL as string | pg.Pool, close: async (_c: unknown) => {} },
  { name: "a pg.Pool", client: () => new pg.Pool({ connectionString: DATABASE_URL, max: 2 }) as string | pg.Pool, close: (c: unknown) => (c as pg.Pool).end() },
])("migrate through $name", ({ client, close }) => {
  it("creates the schema on a fresh database, and a second run changes nothing", async () => {
    const { schema, names } = await freshEmptySchema();
    const c = client();
    await admin.query(`DROP SCHEMA ${schema}`); // migrate makes the schema too
    const ran = await migrate(c, names);
    expect(ran).toHaveLength(6);
    const first = await tablesAndIndexes(schema);
    expect(first).toEqual(
      expect.arrayContaining(["r:chunks", "r:status", "r:convs", "i:status_expires_at_idx", "i:convs_expires_at_idx", "i:chunks_pkey"]),
    );
    await migrate(c, names);
    expect(await tablesAndIndexes(schema)).toEqual(first);
    await useStores(c, names);
    await close(c);
  });
});

describe("migrate on tables made by hand from the original's README", () => {
  it("keeps them and their rows, and adds only the missing indexes", async () => {
    const { schema, names } = await freshEmptySchema();
    await admin.query(`
      CREATE TABLE ${names.chunksTable} (id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (id, seq));
      CREATE TABLE ${names.statusTable} (id TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'active', error TEXT,
        total_chunks INTEGER NOT NULL DEFAULT 0, expires_at BIGINT NOT NULL);
      CREATE TABLE ${names.conversationsTable} (session_id TEXT PRIMARY KEY, data TEXT NOT NULL, expires_at BIGINT NOT NULL);
      INSERT INTO ${names.statusTable} (id, state, total_chunks, expires_at) VALUES ('old', 'done', 1, 9999999999999);
      INSERT INTO ${names.chunksTable} (id, seq, data) VALUES ('old', 1, 'kept');`);
    const before = await tablesAndIndexes(schema);
    expect(before).not.toContain("i:status_expires_at_idx");
    await migrate(DATABASE_URL, names);
    const after = await tablesAndIndexes(schema);
    expect(after.filter((x) => !before.includes(x)).sort()).toEqual(["i:convs_expires_at_idx", "i:status_expires_at_idx"]);
    const store = new PostgresStreamStore(DATABASE_URL, { chunksTable: names.chunksTable, statusTable: names.statusTable });
    expect(await collect(store.readFrom("old", 0))).toEqual([{ seq: 1, data: "kept" }]);
    await store.close();
  });
});

describe("the aibind-postgres command", () => {
  it("migrate --url creates the schema, twice without harm", async () => {
    const { schema, names } = await freshEmptySchema();
    const args = ["migrate", "--url", DATABASE_URL, "--chunks-table", names.chunksTable, `--status-table=${names.statusTable}`, "--conversations-table", names.conversationsTable];
    const first = await run(process.execPath, [cli, ...args]);
    expect(first.stdout).toMatch(/schema ready: 6 statements/);
    await run(process.execPath, [cli, ...args]);
    expect(await tablesAndIndexes(schema)).toEqual(expect.arrayContaining(["r:chunks", "r:status", "r:convs"]));
    await useStores(DATABASE_URL, names);
  });

  it("migrate --print writes the SQL without connecting", async () => {
    const { stdout } = await run(process.execPath, [cli, "migrate", "--print", "--status-table", "app.status"], { env: { ...process.env, DATABASE_URL: "" } });
    expect(stdout).toBe(schemaSql({ statusTable: "app.status" }));
  });

  it("says what is wrong, with the usage, and exits non-zero", async () => {
    for (const [args, message, code] of [
      [["frobnicate"], /unknown command "frobnicate"/, 2],
      [["migrate", "--colour"], /unknown option "--colour"/, 2],
      [["migrate", "--url"], /--url needs a value/, 2],
      [["migrate", "--print", "--status-table", "bad name"], /INVALID_OPTION/, 2],
      // The command names its flags, not the stores' option names.
      [["migrate", "--print", "--chunks-table", "bad name"], /^aibind-postgres: --chunks-table [^"]*"bad name".*\(INVALID_OPTION\)$/m, 2],
      [["migrate", "--url", "postgres://postgres@127.0.0.1:1/db"], /CONNECTION_ERROR/, 1],
    ] as const) {
      const err = await run(process.execPath, [cli, ...args], { env: { ...process.env, DATABASE_URL: "" } }).then(
        () => {
          throw new Error(`${args.join(" ")} succeeded`);
        },
        (e) => e as { code: number; stderr: string },
      );
      expect(err.code, args.join(" ")).toBe(code);
      expect(err.stderr, args.join(" ")).toMatch(message);
    }
  });
});
