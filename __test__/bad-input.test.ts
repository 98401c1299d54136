// Every bad input tried, in one table: what it is, what the store answers (error code, or
// how it is read when it is not an error), and that nothing was written or lost.
// docs/errors.md's bad input section lists the same inputs; the last test keeps the two in step.
import { readFileSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStoreError, PostgresStreamStore, type PostgresClient } from "../index.js";
import { startThrowaway, type Throwaway } from "../scripts/throwaway-postgres.mjs";
import { DATABASE_URL, adminPool, collect, freshSchema, ddl, uid } from "./helpers.js";

const admin = adminPool();
const jsPool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
let tables: Awaited<ReturnType<typeof freshSchema>>;
let passwordServer: Throwaway;

beforeAll(async () => {
  tables = await freshSchema(admin);
  // A server that wants a password from user "app".
  passwordServer = await startThrowaway({
    hba: "host all postgres 127.0.0.1/32 trust\nhost all app 127.0.0.1/32 scram-sha-256\n",
  });
  const c = new pg.Client({ connectionString: passwordServer.url });
  await c.connect();
  await c.query("CREATE ROLE app LOGIN PASSWORD 'right'");
  await c.query(ddl({}));
  await c.query("GRANT ALL ON aibind_stream_chunks, aibind_stream_status TO app");
  await c.end();
}, 120_000);

afterAll(async () => {
  await tables.drop();
  await jsPool.end();
  await admin.end();
  await passwordServer?.stop();
});

type Streams = PostgresStreamStore;
type Conversations = PostgresConversationStore;
const any = (v: unknown) => v as never;
const lone = "ab\uD800cd"; // a high surrogate without its pair

/** A call on a store with bad input, and the code it must fail with. */
interface BadCall {
  input: string;
  code: string;
  message?: RegExp;
  call(s: Streams, c: Conversations, id: string): Promise<unknown> | unknown;
}

const calls: BadCall[] = [
  // Wrong argument types and counts, every method.
  { input: "create() with no id", code: "INVALID_ARGUMENT", message: /stream id must be a string, got undefined/, call: (s) => s.create(any(undefined)) },
  { input: "create(42)", code: "INVALID_ARGUMENT", message: /got a number/, call: (s) => s.create(any(42)) },
  { input: "create(null)", code: "INVALID_ARGUMENT", message: /got null/, call: (s) => s.create(any(null)) },
  { input: "create({})", code: "INVALID_ARGUMENT", message: /got an object/, call: (s) => s.create(any({})) },
  { input: "create(Symbol())", code: "INVALID_ARGUMENT", message: /got a symbol/, call: (s) => s.create(any(Symbol("x"))) },
  { input: "append(id) with no chunk", code: "INVALID_ARGUMENT", message: /chunk must be a string, got undefined/, call: (s, _c, id) => s.append(id, any(undefined)) },
  { input: "append(id, 7)", code: "INVALID_ARGUMENT", message: /chunk must be a string, got a number/, call: (s, _c, id) => s.append(id, any(7)) },
  { input: "append(id, Buffer)", code: "INVALID_ARGUMENT", message: /got an object/, call: (s, _c, id) => s.append(id, any(Buffer.from("x"))) },
  { input: "append(42, chunk)", code: "INVALID_ARGUMENT", message: /stream id/, call: (s) => s.append(any(42), "x") },
  { input: "getStatus() with no id", code: "INVALID_ARGUMENT", call: (s) => s.getStatus(any(undefined)) },
  { input: "stop([])", code: "INVALID_ARGUMENT", message: /got an array/, call: (s) => s.stop(any([])) },
  { input: "complete(true)", code: "INVALID_ARGUMENT", message: /got a boolean/, call: (s) => s.complete(any(true)) },
  { input: "fail(id) with no error", code: "INVALID_ARGUMENT", message: /error must be a string/, call: (s, _c, id) => s.fail(id, any(undefined)) },
  { input: "fail(id, new Error())", code: "INVALID_ARGUMENT", message: /error must be a string, got an object/, call: (s, _c, id) => s.fail(id, any(new Error("x"))) },
  { input: "readFrom() with no id", code: "INVALID_ARGUMENT", call: (s) => collect(s.readFrom(any(undefined), 0)) },
  { input: "load(5)", code: "INVALID_ARGUMENT", message: /sessionId must be a string/, call: (_s, c) => c.load(any(5)) },
  { input: "save(id) with no chat", code: "INVALID_ARGUMENT", message: /chat must be a ChatHistory/, call: (_s, c, id) => c.save(id, any(undefined)) },
  { input: "save(id, {}) (no toJSON)", code: "INVALID_ARGUMENT", message: /chat must be a ChatHistory/, call: (_s, c, id) => c.save(id, any({})) },
  { input: "saveJSON(id, {a: 1})", code: "INVALID_ARGUMENT", message: /json must be a string/, call: (_s, c, id) => c.saveJSON(id, any({ a: 1 })) },
  { input: "loadJSON() with no id", code: "INVALID_ARGUMENT", call: (_s, c) => c.loadJSON(any(undefined)) },
  { input: "delete(1)", code: "INVALID_ARGUMENT", call: (_s, c) => c.delete(any(1)) },
  // Ids.
  { input: "empty stream id", code: "INVALID_ARGUMENT", message: /non-empty/, call: (s) => s.create("") },
  { input: "1 MB stream id", code: "INVALID_ARGUMENT", message: /at most 1024/, call: (s) => s.create("i".repeat(1024 * 1024)) },
  { input: "stream id with NUL", code: "INVALID_ARGUMENT", message: /NUL/, call: (s) => s.create("a\u0000b") },
  { input: "stream id with a lone surrogate", code: "INVALID_ARGUMENT", message: /lone UTF-16 surrogate/, call: (s) => s.create(lone) },
  { input: "empty session id", code: "INVALID_ARGUMENT", call: (_s, c) => c.saveJSON("", "{}") },
  { input: "1 MB session id", code: "INVALID_ARGUMENT", call: (_s, c) => c.saveJSON("s".repeat(1024 * 1024), "{}") },
  // Text that PostgreSQL cannot hold as it is.
  { input: "chunk with NUL (U+0000)", code: "INVALID_ARGUMENT", message: /NUL character \(U\+0000\)/, call: (s, _c, id) => s.append(id, "before\u0000after") },
  { input: "chunk with a lone surrogate", code: "INVALID_ARGUMENT", message: /lone UTF-16 surrogate/, call: (s, _c, id) => s.append(id, lone) },
  { input: "fail() error with NUL", code: "INVALID_ARGUMENT", call: (s, _c, id) => s.fail(id, "x\u0000") },
  { input: "conversation JSON with NUL", code: "INVALID_ARGUMENT", call: (_s, c, id) => c.saveJSON(id, '{"a":"\u0000"}') },
  { input: "conversation JSON with a lone surrogate", code: "INVALID_ARGUMENT", call: (_s, c, id) => c.saveJSON(id, `{"a":"${lone}"}`) },
  // afterSeq that is no number.
  { input: "afterSeq NaN", code: "INVALID_ARGUMENT", message: /^afterSeq must be a number, got NaN$/, call: (s, _c, id) => collect(s.readFrom(id, Number.NaN)) },
  { input: "afterSeq 'abc'", code: "INVALID_ARGUMENT", message: /afterSeq must be a number/, call: (s, _c, id) => collect(s.readFrom(id, any("abc"))) },
  { input: "afterSeq {}", code: "INVALID_ARGUMENT", message: /afterSeq must be a number/, call: (s, _c, id) => collect(s.readFrom(id, any({}))) },
];

/** afterSeq values that are not errors: read as the original reads them (`seq > afterSeq`). */
const seqReadings: Array<[string, unknown, number[]]> = [
  ["afterSeq -5", -5, [1, 2, 3]],
  ["afterSeq 1.7", 1.7, [2, 3]],
  ["afterSeq '2'", "2", [3]],
  ["afterSeq 2n", 2n, [3]],
  ["afterSeq 1e20", 1e20, []],
  ["afterSeq Infinity", Number.POSITIVE_INFINITY, []],
  ["afterSeq -Infinity", Number.NEGATIVE_INFINITY, [1, 2, 3]],
  ["afterSeq undefined", undefined, [1, 2, 3]],
];

/** Constructions that must throw. */
const badOptions: Array<[string, string, () => unknown]> = [
  ["ttlMs -1", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { ttlMs: -1 })],
  ["ttlMs NaN", "INVALID_OPTION", () => new PostgresConversationStore(DATABASE_URL, { ttlMs: Number.NaN })],
  ["pollIntervalMs 0", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { pollIntervalMs: 0 })],
  ["pollIntervalMs Infinity", "INVALID_OPTION", () => new PostgresStreamStore(jsPool, { pollIntervalMs: Number.POSITIVE_INFINITY })],
  ["staleAfterMs -1", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { staleAfterMs: -1 })],
  ["notifyBatchMs -1", "INVALID_OPTION", () => new PostgresStreamStore(jsPool, { notifyBatchMs: -1 })],
  ["notifyBatchMs 1001", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { notifyBatchMs: 1001 })],
  ["notifyBatchMs '2'", "INVALID_OPTION", () => new PostgresStreamStore(jsPool, { notifyBatchMs: any("2") })],
  ["chunksTable 't; DROP TABLE x'", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { chunksTable: "t; DROP TABLE x" })],
  ["statusTable 'x\" OR 1=1 --'", "INVALID_OPTION", () => new PostgresStreamStore(jsPool, { statusTable: 'x" OR 1=1 --' })],
  ["table 'a.b.c'", "INVALID_OPTION", () => new PostgresConversationStore(DATABASE_URL, { table: "a.b.c" })],
  ["table ''", "INVALID_OPTION", () => new PostgresConversationStore(jsPool, { table: "" })],
  ["poolSize 0", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { poolSize: 0 })],
  ["queryTimeoutMs 0", "INVALID_OPTION", () => new PostgresStreamStore(jsPool, { queryTimeoutMs: 0 })],
  ["connectTimeoutMs -1", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { connectTimeoutMs: -1 })],
  ["idleTimeoutMs -1", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { idleTimeoutMs: -1 })],
  ["pooler 'statement'", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { pooler: any("statement") })],
  ["listenUrl 42", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { listenUrl: any(42) })],
  ["listenUrl 'not a url'", "INVALID_ARGUMENT", () => new PostgresStreamStore(DATABASE_URL, { listenUrl: "not a url" })],
  ["replicaUrl 42", "INVALID_OPTION", () => new PostgresStreamStore(DATABASE_URL, { replicaUrl: any(42) })],
  ["replicaUrl 'not a url'", "INVALID_ARGUMENT", () => new PostgresConversationStore(DATABASE_URL, { replicaUrl: "not a url" })],
  ["replicaUrl with a pg.Pool", "INVALID_OPTION", () => new PostgresStreamStore(jsPool, { replicaUrl: DATABASE_URL })],
  ["replica 42", "INVALID_OPTION", () => new PostgresStreamStore(jsPool, { replica: any(42) })],
  ["replica (a client) with a connection string", "INVALID_OPTION", () => new PostgresConversationStore(DATABASE_URL, { replica: jsPool })],
  // Numbers out of range, and options of the wrong type, with either kind of client.
  ...[
    ["connection string", () => DATABASE_URL as string | PostgresClient] as const,
    ["pg.Pool", () => jsPool as string | PostgresClient] as const,
  ].flatMap(([over, client]): Array<[string, string, () => unknown]> => [
    [`poolSize -1 (${over})`, "INVALID_OPTION", () => new PostgresStreamStore(client(), { poolSize: -1 })],
    [`poolSize 1e9 (${over})`, "INVALID_OPTION", () => new PostgresStreamStore(client(), { poolSize: 1e9 })],
    [`poolSize 1.5 (${over})`, "INVALID_OPTION", () => new PostgresConversationStore(client(), { poolSize: 1.5 })],
    [`poolSize '10' (${over})`, "INVALID_OPTION", () => new PostgresStreamStore(client(), { poolSize: any("10") })],
    [`queryTimeoutMs 2.5 (${over})`, "INVALID_OPTION", () => new PostgresStreamStore(client(), { queryTimeoutMs: 2.5 })],
    [`ttlMs '5' (${over})`, "INVALID_OPTION", () => new PostgresStreamStore(client(), { ttlMs: any("5") })],
    [`listen 'yes' (${over})`, "INVALID_OPTION", () => new PostgresStreamStore(client(), { listen: any("yes") })],
    [`synchronousCommit 'off' (${over})`, "INVALID_OPTION", () => new PostgresStreamStore(client(), { synchronousCommit: any("off") })],
    [`chunksTable 42 (${over})`, "INVALID_OPTION", () => new PostgresStreamStore(client(), { chunksTable: any(42) })],
    [`table {} (${over})`, "INVALID_OPTION", () => new PostgresConversationStore(client(), { table: any({}) })],
  ]),
  ["options 'fast'", "INVALID_ARGUMENT", () => new PostgresStreamStore(DATABASE_URL, any("fast"))],
  ["client 42", "INVALID_ARGUMENT", () => new PostgresStreamStore(any(42))],
  ["client {} (no query)", "INVALID_ARGUMENT", () => new PostgresConversationStore(any({}))],
  ["connection string 'not a url'", "INVALID_ARGUMENT", () => new PostgresStreamStore("not a url")],
  ["connection string 'postgres://h/db?a=%zz'", "INVALID_ARGUMENT", () => new PostgresStreamStore("postgres://h/db?a=%zz")],
  ["connection string with sslmode=sometimes", "INVALID_ARGUMENT", () => new PostgresStreamStore("postgres://h/db?sslmode=sometimes")],
];

describe.each([
  { name: "connection string", client: () => DATABASE_URL as string | PostgresClient },
  { name: "pg.Pool", client: () => jsPool as string | PostgresClient },
])("bad input over $name", ({ client }) => {
  it.each(calls)("$input: $code, nothing written", async ({ code, message, call }) => {
    const streams = new PostgresStreamStore(client(), tables.stream);
    const conversations = new PostgresConversationStore(client(), tables.conversation);
    const id = uid("bad");
    await streams.create(id);
    let err: (Error & { code?: string }) | undefined;
    try {
      await call(streams, conversations, id);
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err).toBeInstanceOf(Error);
    expect(err?.code).toBe(code);
    if (message) expect(err?.message).toMatch(message);
    // Nothing written or lost: the stream is as created, no conversation saved.
    expect(await streams.getStatus(id)).toEqual({ state: "active", error: undefined, totalChunks: 0 });
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${tables.conversation.table} WHERE session_id = $1 OR length(session_id) > 1024`, [id]);
    expect(rows[0].n).toBe(0);
    // The store still works.
    expect(await streams.append(id, "ok")).toBe(1);
    await streams.close();
    await conversations.close();
  });

  it.each(seqReadings)("%s reads as the original does", async (_name, afterSeq, seqs) => {
    const store = new PostgresStreamStore(client(), tables.stream);
    const id = uid("seq");
    await store.create(id);
    for (const data of ["a", "b", "c"]) await store.append(id, data);
    await store.complete(id);
    expect((await collect(store.readFrom(id, afterSeq as number))).map((c) => c.seq)).toEqual(seqs);
    await store.close();
  });
});

describe("bad options and clients", () => {
  it.each(badOptions)("%s: %s at construction", (name, code, make) => {
    expect(make).toThrow(expect.objectContaining({ code }));
    let thrown: unknown;
    try {
      make();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PostgresStoreError);
    // An option's error names the option (never a napi status such as NumberExpected).
    if (code === "INVALID_OPTION") expect((thrown as Error).message).toContain(`"${name.split(" ")[0]}"`);
  });
});

describe("connection strings that cannot connect", () => {
  const cases: Array<[string, () => string, string, RegExp, boolean, string?]> = [
    ["nothing listening on the port", () => "postgres://postgres@127.0.0.1:1/db", "CONNECTION_ERROR", /could not connect|refused/i, true],
    ["a host that does not resolve", () => "postgres://postgres@no-such-host.invalid/db", "CONNECTION_ERROR", /could not connect/i, true],
    ["the wrong password", () => passwordServer.url.replace("postgres@", "app:wrong@"), "CONNECTION_ERROR", /password authentication failed/, false, "28P01"],
    ["a database that does not exist", () => passwordServer.url.replace("/aibind_test", "/nope"), "CONNECTION_ERROR", /does not exist/, false, "3D000"],
  ];
  it.each(cases)("%s: a clear error on the first call, never echoing the password", async (_name, url, code, message, retryable, sqlState) => {
    const store = new PostgresStreamStore(url(), { connectTimeoutMs: 2_000, queryTimeoutMs: 5_000 });
    let err: (Error & { code?: string; sqlState?: string; retryable?: boolean }) | undefined;
    try {
      await store.create(uid());
    } catch (e) {
      err = e as typeof err;
    }
    expect(err?.code).toBe(code);
    expect(err?.message).toMatch(message);
    expect(err?.message).not.toContain("wrong");
    expect(err?.retryable).toBe(retryable);
    if (sqlState) expect(err?.sqlState).toBe(sqlState);
    await store.close();
  });

  it("the right password connects", async () => {
    const store = new PostgresStreamStore(passwordServer.url.replace("postgres@", "app:right@"));
    expect(await store.getStatus("none")).toBeNull();
    await store.close();
  });
});

describe("docs/errors.md's bad input section", () => {
  it("lists every bad input this file tries", () => {
    const page = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");
    const section = page.slice(page.indexOf("## Bad input"));
    const labels = [...calls.map((c) => c.input), ...seqReadings.map(([name]) => name), ...badOptions.map(([name]) => name)];
    const missing = labels.filter((label) => !section.includes(`| ${label} |`));
    expect(missing).toEqual([]);
  });
});
