// The `aibind-postgres` command for an operator (`streams`, `tail`, `stats`, help, exit
// codes, --json), spawned for real against PostgreSQL, on tables in a schema of its own.
import { execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, eventually, freshSchema, uid } from "./helpers.js";

const cli = fileURLToPath(new URL("../cli.mjs", import.meta.url));
const admin = adminPool();
let fresh: Awaited<ReturnType<typeof freshSchema>>;
let tableFlags: string[];

beforeAll(async () => {
  fresh = await freshSchema(admin);
  tableFlags = ["--chunks-table", fresh.stream.chunksTable, "--status-table", fresh.stream.statusTable, "--conversations-table", fresh.conversation.table];
});
afterAll(async () => {
  await fresh.drop();
  await admin.end();
});

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the command to its end: exit code and output. */
function run(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

const MINUTE = 60_000;
/** Each test spawns the command (a Node process) up to 20 times: slow on a loaded machine. */
const SLOW = 180_000;

/** Puts a stream into the status table as it would be after `idle` ms without a write (ttlMs 5 min). */
async function putStream(id: string, state: string, chunks: number, idleMs: number, error: string | null = null) {
  const expiresAt = Date.now() - idleMs + 5 * MINUTE;
  await admin.query(`INSERT INTO ${fresh.stream.statusTable} (id, state, error, total_chunks, expires_at) VALUES ($1, $2, $3, $4, $5)`, [
    id,
    state,
    error,
    chunks,
    expiresAt,
  ]);
}

describe("streams", () => {
  const p = uid("ls").slice(0, 12);
  beforeAll(async () => {
    await putStream(`${p}-live`, "active", 3, 1_000);
    await putStream(`${p}-done`, "done", 7, 2 * MINUTE);
    await putStream(`${p}-stop`, "stopped", 1, 3 * MINUTE);
    await putStream(`${p}-fail`, "error", 2, 10 * MINUTE, "the model\nsaid no");
    await putStream(`${p}-gone`, "active", 5, 2 * 60 * MINUTE); // silent for 2 h: stale
    await putStream(`other-${p}`, "active", 0, 0);
  });
  const ids = (out: Ran) => (JSON.parse(out.stdout).streams as { id: string }[]).map((s) => s.id);

  it("lists streams newest first, with state, chunks, last write, expiry and cleanup (text)", async () => {
    const out = await run(["streams", "--prefix", p, ...tableFlags]);
    expect(out.code).toBe(0);
    const lines = out.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+STATE\s+CHUNKS\s+LAST WRITE\s+EXPIRES\s+CLEANUP\s+ERROR$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3).join(" "))).toEqual([
      `${p}-live active 3`,
      `${p}-done done 7`,
      `${p}-stop stopped 1`,
      `${p}-fail error 2`,
      `${p}-gone stale 5`,
    ]);
    expect(lines[2]).toMatch(/2m( \d+s)? ago\s+in (3m|2m \d+s)\s+no/);
    expect(lines[4]).toMatch(/10m( \d+s)? ago\s+5m( \d+s)? ago\s+yes\s+the model said no$/); // finished and past its ttl
    expect(lines[5]).toMatch(/2h( \d+m)? ago\s+1h 5\dm ago\s+yes/); // stale: cleanup removes it
  }, SLOW);

  it("--json gives every field; --limit says more matched", async () => {
    const out = await run(["streams", "--prefix", p, "--limit", "2", "--json", ...tableFlags]);
    expect(out.code).toBe(0);
    const { streams, more } = JSON.parse(out.stdout);
    expect(more).toBe(true);
    expect(streams).toHaveLength(2);
    expect(streams[1]).toEqual({
      id: `${p}-done`,
      state: "done",
      totalChunks: 7,
      error: null,
      lastWriteAt: expect.any(String),
      idleMs: expect.any(Number),
      expiresAt: expect.any(String),
      removable: false,
    });
    expect(streams[1].idleMs).toBeGreaterThanOrEqual(2 * MINUTE);
    expect(streams[1].idleMs).toBeLessThan(3 * MINUTE);
    expect(Date.parse(streams[1].expiresAt) - Date.parse(streams[1].lastWriteAt)).toBe(5 * MINUTE);
    const all = await run(["streams", "--prefix", p, "--limit", "5", "--json", ...tableFlags]);
    expect(JSON.parse(all.stdout).more).toBe(false);
  }, SLOW);

  it("filters by state, staleness, idleness, cleanup and id prefix", async () => {
    const cases: [string[], string[]][] = [
      [["--state", "active"], [`${p}-live`]],
      [["--state", "finished"], [`${p}-done`, `${p}-stop`, `${p}-fail`]],
      [["--state", "error,stale"], [`${p}-fail`, `${p}-gone`]],
      [["--stale"], [`${p}-gone`]],
      [["--removable"], [`${p}-fail`, `${p}-gone`]],
      [["--idle-ms", String(5 * MINUTE)], [`${p}-fail`, `${p}-gone`]],
      // A shorter staleAfterMs makes the 2-hour-silent stream stale sooner; ttlMs moves the last write.
      [["--stale-after-ms", "0", "--stale"], [`${p}-gone`]],
    ];
    for (const [flags, expected] of cases) {
      const out = await run(["streams", "--prefix", p, "--json", ...flags, ...tableFlags]);
      expect(out.code, flags.join(" ")).toBe(0);
      expect(ids(out), flags.join(" ")).toEqual(expected);
    }
    const other = await run(["streams", "--prefix", "other-", "--json", ...tableFlags]);
    expect(ids(other)).toContain(`other-${p}`);
    expect(ids(other).every((id) => id.startsWith("other-"))).toBe(true);
    // Its expiry is 5 min off less 1 s: with a ttl of 10 min its last write was 5 min ago.
    const ttl = await run(["streams", "--prefix", `${p}-live`, "--ttl-ms", String(10 * MINUTE), "--json", ...tableFlags]);
    expect(JSON.parse(ttl.stdout).streams[0].idleMs).toBeGreaterThan(5 * MINUTE);
    expect(JSON.parse(ttl.stdout).streams[0].idleMs).toBeLessThan(6 * MINUTE);
  }, SLOW);

  it("says when nothing matches", async () => {
    const out = await run(["streams", "--prefix", "no-such-prefix-", ...tableFlags]);
    expect(out).toMatchObject({ code: 0, stdout: "no streams match\n" });
  }, SLOW);
});

/** Starts `tail`, collecting its output as it comes. */
function startTail(args: string[]) {
  const child = spawn(process.execPath, [cli, "tail", ...args, ...tableFlags], { env: process.env });
  const out = { stdout: "", stderr: "" };
  child.stdout.setEncoding("utf8").on("data", (d: string) => (out.stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (out.stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return { child, out, exited };
}

describe("tail", () => {
  let store: PostgresStreamStore;
  let writer: PostgresStreamStore;
  let pool: pg.Pool;
  beforeAll(() => {
    store = new PostgresStreamStore(DATABASE_URL, fresh.stream);
    pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    writer = new PostgresStreamStore(pool, fresh.stream); // another store, another client
  });
  afterAll(async () => {
    await store.close();
    await writer.close();
    await pool.end();
  });

  it("prints chunks as they are written, by another store, and exits 0 when the stream completes", async () => {
    const id = uid("tail");
    await store.create(id);
    await store.append(id, "Hello");
    const tail = startTail([id]);
    await eventually(async () => tail.out.stdout === "Hello", 20_000);
    // A reader as any: it waits on the pool's LISTEN connection, named as the command.
    await eventually(async () => {
      const { rows } = await admin.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
         AND application_name = 'aibind-postgres-cli' AND query = 'LISTEN aibind_stream_writes'`,
      );
      return rows.length > 0;
    }, 20_000);
    await writer.append(id, ", ");
    await eventually(async () => tail.out.stdout === "Hello, ", 20_000);
    await writer.append(id, "world");
    await eventually(async () => tail.out.stdout === "Hello, world", 20_000);
    await writer.complete(id);
    expect(await tail.exited).toBe(0);
    expect(tail.out.stdout).toBe("Hello, world");
    expect(tail.out.stderr).toBe(`aibind-postgres: stream "${id}" done: 3 chunks\n`);
  }, SLOW);

  it("--json from a seq: a line per chunk, then how it ended; exit 3 when it fails", async () => {
    const id = uid("tail");
    await store.create(id);
    for (const c of ["a", "b", "c"]) await store.append(id, c);
    const tail = startTail([id, "--from", "2", "--json"]);
    await eventually(async () => tail.out.stdout.split("\n").length === 3, 20_000);
    await writer.append(id, "d\n");
    await eventually(async () => tail.out.stdout.includes('"d\\n"'), 20_000);
    await writer.fail(id, "out of tokens");
    expect(await tail.exited).toBe(3);
    expect(tail.out.stdout.trim().split("\n").map((l) => JSON.parse(l))).toEqual([
      { seq: 2, data: "b" },
      { seq: 3, data: "c" },
      { seq: 4, data: "d\n" },
      { end: "error", totalChunks: 4, error: "out of tokens" },
    ]);
    expect(tail.out.stderr).toBe("");
  }, SLOW);

  it("--last n on a finished stream: its last chunks, exit 4 when it was stopped", async () => {
    const id = uid("tail");
    await store.create(id);
    for (const c of ["1", "2", "3", "4"]) await store.append(id, c);
    await store.stop(id);
    const out = await run(["tail", id, "--last", "2", ...tableFlags]);
    expect(out).toEqual({ code: 4, stdout: "34", stderr: `aibind-postgres: stream "${id}" stopped: 4 chunks\n` });
    const all = await run(["tail", id, "--last", "10", ...tableFlags]);
    expect(all.stdout).toBe("1234");
  }, SLOW);

  it("exits 5 for a stream that does not exist", async () => {
    const out = await run(["tail", uid("none"), ...tableFlags]);
    expect(out.code).toBe(5);
    expect(out.stderr).toMatch(/no stream "none-[^"]+" \(never created, or removed by cleanup\)/);
    const json = await run(["tail", uid("none"), "--json", ...tableFlags]);
    expect(json).toMatchObject({ code: 5, stdout: '{"end":"missing","totalChunks":null}\n' });
  }, SLOW);

  it("exits 130 on Ctrl-C while it waits", async () => {
    const id = uid("tail");
    await store.create(id);
    await store.append(id, "x");
    const tail = startTail([id]);
    await eventually(async () => tail.out.stdout === "x", 20_000);
    tail.child.kill("SIGINT");
    expect(await tail.exited).toBe(130);
  }, SLOW);
});

describe("stats", () => {
  it("shows connections by application_name, table sizes and rows waiting for cleanup", async () => {
    const app = uid("cli-app").slice(0, 30);
    const held = new pg.Client({ connectionString: DATABASE_URL, application_name: app });
    await held.connect();
    await held.query("BEGIN; SELECT 1");
    const store = new PostgresStreamStore(DATABASE_URL, fresh.stream); // the Rust pool: "aibind-rs"
    const conversations = new PostgresConversationStore(DATABASE_URL, { ...fresh.conversation, ttlMs: 1 });
    const s = await run(["stats", "--json", ...tableFlags]);
    try {
      const id = uid("st");
      await store.create(id);
      await conversations.saveJSON(uid("c"), "{}");
      await admin.query(`UPDATE ${fresh.stream.statusTable} SET state = 'done', total_chunks = 9, expires_at = 1 WHERE id = $1`, [id]);
      const out = await run(["stats", "--json", ...tableFlags]);
      expect(out.code).toBe(0);
      const stats = JSON.parse(out.stdout);
      expect(stats.database).toBe(new URL(DATABASE_URL).pathname.slice(1));
      expect(stats.maxConnections).toBeGreaterThan(0);
      expect(stats.connections).toContainEqual({
        applicationName: app,
        total: 1,
        active: 0,
        idle: 0,
        idleInTransaction: 1,
        waitingOnLock: 0,
        oldestTransactionMs: expect.any(Number),
      });
      expect(stats.connections.map((c: { applicationName: string }) => c.applicationName)).toContain("aibind-rs");
      expect(stats.tables.map((t: { table: string; exists: boolean }) => [t.table, t.exists])).toEqual([
        [fresh.stream.chunksTable, true],
        [fresh.stream.statusTable, true],
        [fresh.conversation.table, true],
      ]);
      expect(stats.tables[1].totalBytes).toBeGreaterThan(0);
      // Exactly what was added since the first look (other tests share the schema).
      const before = JSON.parse(s.stdout);
      expect(stats.streams.removable.streams - before.streams.removable.streams).toBe(1);
      expect(stats.streams.removable.chunks - before.streams.removable.chunks).toBe(9);
      expect(stats.conversations.rows - before.conversations.rows).toBe(1);
      await eventually(async () => JSON.parse((await run(["stats", "--json", ...tableFlags])).stdout).conversations.removable > before.conversations.removable, 20_000);
    } finally {
      await held.end();
      await store.close();
      await conversations.close();
    }
  }, SLOW);

  it("text: the same figures for a person; a table not created is named missing", async () => {
    const out = await run(["stats", ...tableFlags.slice(0, 4), "--conversations-table", `${fresh.schema}.not_made`]);
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^database \S+ \(PostgreSQL [^)]+\): \d+ client connections/);
    expect(out.stdout).toMatch(/APPLICATION\s+TOTAL\s+ACTIVE\s+IDLE\s+IDLE IN TX\s+WAITING ON LOCK\s+OLDEST TX/);
    expect(out.stdout).toMatch(new RegExp(`${fresh.stream.statusTable}\\s+\\d+\\.\\d kB`));
    expect(out.stdout).toMatch(new RegExp(`${fresh.schema}\\.not_made\\s+missing \\(run migrate\\)`));
    expect(out.stdout).toMatch(/^waiting for cleanup: \d+ streams, \d+ chunks$/m);
    expect(out.stdout).not.toMatch(/^conversations:/m);
  }, SLOW);
});

describe("help, exit codes and bad input", () => {
  it("--help for the command and each subcommand, exit 0", async () => {
    const top = await run(["--help"]);
    expect(top.code).toBe(0);
    for (const c of ["migrate", "streams", "tail", "stats"]) expect(top.stdout).toMatch(new RegExp(`^  ${c} `, "m"));
    expect(top.stdout).toMatch(/Exit codes: 0 done, 1 .*\n2 bad input/);
    for (const c of ["migrate", "streams", "tail", "stats"]) {
      const out = await run([c, "--help"], { DATABASE_URL: "" });
      expect(out.code, c).toBe(0);
      expect(out.stdout, c).toMatch(new RegExp(`^usage: aibind-postgres ${c}`));
    }
    expect((await run(["tail", "-h"])).stdout).toMatch(/Exit codes: 0 the stream completed, 3 it failed/);
  }, SLOW);

  it("says what is wrong with a stable code, never a stack trace: 2 for bad input, 1 for the database", async () => {
    const none = { DATABASE_URL: "" };
    const cases: [string[], RegExp, number, Record<string, string>?][] = [
      [["streams", "--limit", "ten"], /--limit must be a whole number of at least 1, got "ten" \(INVALID_ARGUMENT\)/, 2],
      [["streams", "--limit=0"], /--limit must be a whole number of at least 1, got "0"/, 2],
      [["tail", "a", "--last", "-1"], /--last must be a whole number, 0 or more, got "-1"/, 2],
      [["streams", "--state", "running"], /--state must be a comma-separated list of active, stale, done, stopped, error or finished/, 2],
      [["streams", "--stale", "--state", "done"], /--stale and --state together/, 2],
      [["streams", "--json=yes"], /--json takes no value/, 2],
      [["streams", "extra"], /unexpected argument "extra"/, 2],
      [["streams", "--status-table", "bad name"], /^aibind-postgres: --status-table must be a table name.*"bad name" \(INVALID_OPTION\)/m, 2],
      [["tail"], /no id given/, 2],
      [["tail", "a", "b"], /one id only, got 2/, 2],
      [["tail", "a", "--from", "0"], /--from must be a whole number of at least 1/, 2],
      [["tail", "a", "--from", "2", "--last", "1"], /--from and --last together/, 2],
      [["tail", "a", "--poll-interval-ms"], /--poll-interval-ms needs a value/, 2],
      [["stats"], /no database: pass --url or set DATABASE_URL/, 2, none],
      [["stats", "--url", "postgres://postgres@127.0.0.1:1/db"], /\(CONNECTION_ERROR\)$/m, 1],
      [["streams", "--status-table", `${fresh.schema}.absent`], /does not exist; the stores never create their tables.*\(DATABASE_ERROR\)/, 1],
    ];
    for (const [args, message, code, env] of cases) {
      const out = await run(args, env);
      expect(out.code, args.join(" ")).toBe(code);
      expect(out.stderr, args.join(" ")).toMatch(message);
      expect(out.stderr, args.join(" ")).not.toMatch(/\n\s+at /); // no stack trace
      if (code === 2) expect(out.stderr, args.join(" ")).toMatch(new RegExp(`usage: aibind-postgres ${args[0]}`));
    }
  }, SLOW);

  it("--json errors are JSON on stderr, with the code", async () => {
    const out = await run(["streams", "--json", "--limit", "-3"]);
    expect(out.code).toBe(2);
    expect(out.stdout).toBe("");
    expect(JSON.parse(out.stderr)).toEqual({ error: { code: "INVALID_ARGUMENT", message: expect.stringMatching(/^--limit needs a value$|^--limit must be/) } });
    const db = await run(["stats", "--json", "--status-table", `${fresh.schema}.absent`, "--url", "postgres://postgres@127.0.0.1:1/db"]);
    expect(db.code).toBe(1);
    expect(JSON.parse(db.stderr).error.code).toBe("CONNECTION_ERROR");
  }, SLOW);
});
