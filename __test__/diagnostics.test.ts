// Diagnostics channels (lib/diagnostics.cjs): every store operation is published on a
// `node:diagnostics_channel` tracing channel, with where it went and how it ended, never
// with chunk text, parameter values or ids (ids only with `diagnosticIds: true`).
import { execFileSync } from "node:child_process";
import dc from "node:diagnostics_channel";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore, type PostgresClient } from "../index.js";
import { DATABASE_URL, adminPool, freshSchema, rejection, uid } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
const pool = new pg.Pool({ connectionString: DATABASE_URL });

const NAMES = [
  "stream:create",
  "stream:append",
  "stream:read",
  "stream:getStatus",
  "stream:stop",
  "stream:complete",
  "stream:fail",
  "stream:cleanup",
  "conversation:save",
  "conversation:load",
  "conversation:delete",
  "conversation:cleanup",
];

type Event = { kind: "start" | "asyncEnd" | "error"; name: string; context: Record<string, unknown> };
let events: Event[] = [];
const handlers = NAMES.map((name) => {
  const channel = dc.tracingChannel(`aibind-rs:${name}`);
  const record = (kind: Event["kind"]) => (context: object) =>
    void events.push({ kind, name, context: { ...context } });
  const subscribers = {
    start: record("start"),
    end: () => {},
    asyncStart: () => {},
    asyncEnd: record("asyncEnd"),
    error: record("error"),
  };
  return { channel, subscribers };
});

beforeAll(async () => {
  tables = await freshSchema(admin);
  for (const { channel, subscribers } of handlers) channel.subscribe(subscribers);
});
afterAll(async () => {
  for (const { channel, subscribers } of handlers) channel.unsubscribe(subscribers);
  await pool.end();
  await tables.drop();
  await admin.end();
});

const target = new URL(DATABASE_URL);
const clients: Array<{ name: string; backend: string; client(): string | PostgresClient }> = [
  { name: "connection string", backend: "rust-pool", client: () => DATABASE_URL },
  { name: "pg.Pool", backend: "js-client", client: () => pool },
];

describe.each(clients)("$name", ({ backend, client }) => {
  it("publishes every operation: where it went, how it ended, and no text, values or ids", async () => {
    events = [];
    const streams = new PostgresStreamStore(client(), tables.stream);
    const chats = new PostgresConversationStore(client(), tables.conversation);
    const id = uid("secret-id");
    const chunk = "secret-chunk-text";
    await streams.create(id);
    expect(await streams.append(id, chunk)).toBe(1);
    await streams.complete(id);
    const read = [];
    for await (const c of streams.readFrom(id, 0)) read.push(c);
    expect(read).toEqual([{ seq: 1, data: chunk }]);
    await streams.getStatus(id);
    const failed = uid("secret-failed");
    await streams.create(failed);
    await streams.fail(failed, "secret-reason");
    await streams.stop(uid("secret-missing"));
    await streams.cleanup();
    const err = await rejection(streams.create(id));
    expect(err.code).toBe("STREAM_EXISTS");
    const session = uid("secret-session");
    await chats.saveJSON(session, '{"secret":"history"}');
    expect(await chats.loadJSON(session)).toBe('{"secret":"history"}');
    await chats.delete(session);
    await chats.cleanup();

    const started = new Set(events.filter((e) => e.kind === "start").map((e) => e.name));
    expect([...started].sort()).toEqual([...NAMES].sort());
    for (const e of events.filter((e) => e.kind === "start")) {
      const [store, operation] = e.name.split(":");
      expect(e.context).toMatchObject({ store, operation, backend });
      expect(typeof e.context.table).toBe("string");
      if (backend === "rust-pool" || e.context.serverAddress !== undefined) {
        expect(e.context).toMatchObject({
          serverAddress: target.hostname,
          serverPort: Number(target.port || 5432),
          database: target.pathname.slice(1),
        });
      }
    }
    // Results are summaries: a seq, a count, a page's size, a status without its message.
    const ends = events.filter((e) => e.kind === "asyncEnd");
    expect(ends.find((e) => e.name === "stream:append")?.context.result).toBe(1);
    expect(ends.some((e) => e.name === "stream:read" && (e.context.result as { chunks: number })?.chunks === 1)).toBe(
      true,
    );
    expect(ends.find((e) => e.name === "stream:getStatus")?.context.result).toEqual({ state: "done", totalChunks: 1 });
    // An error is the one the call rejected with.
    const failure = events.find((e) => e.kind === "error" && e.name === "stream:create");
    expect((failure?.context.error as { code?: string })?.code).toBe("STREAM_EXISTS");
    // Nothing the app wrote, and no id, is in any event but the error's own message.
    const shown = JSON.stringify(events.map((e) => ({ ...e.context, error: undefined })));
    for (const secret of [
      "secret-id",
      "secret-chunk-text",
      "secret-failed",
      "secret-reason",
      "secret-session",
      "history",
      "password",
    ]) {
      expect(shown).not.toContain(secret);
    }
    await streams.close();
    await chats.close();
  });

  it("with diagnosticIds: true, the stream or session id is in the context", async () => {
    events = [];
    const streams = new PostgresStreamStore(client(), { ...tables.stream, diagnosticIds: true });
    const id = uid("shown");
    await streams.create(id);
    const start = events.find((e) => e.kind === "start" && e.name === "stream:create");
    expect(start?.context.id).toBe(id);
    await streams.close();
  });
});

// Node 18.17 and 18.18 (within `engines`) have no `tracingChannel`: the stores work there,
// publishing nothing. Simulated by taking it away before the package loads.
it("works on a Node without tracing channels (18.17, 18.18)", () => {
  const script = `
    const pg = require("pg"); // Node's own net and stdio use tracing channels: loaded first
    void process.stdout, process.stderr;
    delete require("node:diagnostics_channel").tracingChannel;
    const { PostgresStreamStore } = require(process.argv[1]);
    (async () => {
      for (const client of [process.argv[2], new pg.Pool({ connectionString: process.argv[2] })]) {
        const store = new PostgresStreamStore(client, JSON.parse(process.argv[3]));
        const id = "no-tracing-" + Math.random();
        await store.create(id);
        const seq = await store.append(id, "x");
        await store.complete(id);
        const read = [];
        for await (const c of store.readFrom(id, 0)) read.push(c.data);
        console.log(seq, read.join());
        await store.close();
        if (typeof client !== "string") await client.end();
      }
    })();`;
  const index = fileURLToPath(new URL("../index.cjs", import.meta.url));
  const out = execFileSync(process.execPath, ["-e", script, index, DATABASE_URL, JSON.stringify(tables.stream)], {
    encoding: "utf8",
  });
  expect(out.trim().split("\n")).toEqual(["1 x", "1 x"]);
});
