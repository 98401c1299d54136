// The Rust pool's diagnostics channels (src/telemetry.rs, lib/telemetry.cjs): each round
// trip, checkout, connect and the LISTEN connection's connects and ends, published in
// batches after the fact with their times; never a parameter value, chunk text or id.
import dc from "node:diagnostics_channel";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import {
  DATABASE_URL,
  adminPool,
  collect,
  eventually,
  freshSchema,
  rejection,
  sleep,
  uid,
  urlWithApp,
} from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
const target = new URL(DATABASE_URL);

const NAMES = ["pool:query", "pool:checkout", "pool:connect", "listener:listen", "listener:end"];
type Event = { kind: "start" | "asyncEnd" | "error"; name: string; context: Record<string, any> };
let events: Event[] = [];
const handlers = NAMES.map((name) => {
  const channel = dc.tracingChannel(`aibind-rs:${name}`);
  const record = (kind: Event["kind"]) => (context: object) =>
    void events.push({ kind, name, context: { ...context } });
  return {
    channel,
    subscribers: {
      start: record("start"),
      end: () => {},
      asyncStart: () => {},
      asyncEnd: record("asyncEnd"),
      error: record("error"),
    },
  };
});
const ends = (name: string) => events.filter((e) => e.kind === "asyncEnd" && e.name === name).map((e) => e.context);

beforeAll(async () => {
  tables = await freshSchema(admin);
  for (const { channel, subscribers } of handlers) channel.subscribe(subscribers);
});
afterAll(async () => {
  for (const { channel, subscribers } of handlers) channel.unsubscribe(subscribers);
  await tables.drop();
  await admin.end();
});

it("round trips, checkouts and connects: what ran where, how long, never a value", async () => {
  events = [];
  // The append's own event (at its start) names the call its round trip's event names.
  const appendStarts: Array<Record<string, unknown>> = [];
  const appendChannel = dc.tracingChannel("aibind-rs:stream:append");
  const onAppend = {
    start: (c: object) => void appendStarts.push({ ...c }),
    end() {},
    asyncStart() {},
    asyncEnd() {},
    error() {},
  };
  appendChannel.subscribe(onAppend);
  const app = uid("pool-diag");
  const store = new PostgresStreamStore(urlWithApp(app), tables.stream);
  const id = uid("secret-id");
  const before = Date.now();
  await store.create(id);
  await store.append(id, "secret-chunk");
  await store.complete(id);
  await eventually(async () => ends("pool:query").length >= 3);

  const connects = ends("pool:connect");
  expect(connects.length).toBeGreaterThanOrEqual(1);
  expect(connects[0]).toMatchObject({
    serverAddress: target.hostname,
    serverPort: Number(target.port || 5432),
    database: target.pathname.slice(1),
  });
  const checkouts = ends("pool:checkout");
  expect(checkouts.length).toBeGreaterThanOrEqual(3);
  expect(checkouts[0].opened).toBe(true);

  const queries = ends("pool:query");
  const insert = queries.find((q) => q.summary.includes(`INSERT ${tables.stream.chunksTable}`));
  expect(insert).toMatchObject({
    kind: "query",
    operation: "UPDATE",
    batchSize: 1,
    serverAddress: target.hostname,
    database: target.pathname.slice(1),
  });
  expect(insert!.text).toContain("$1::text");
  expect(insert!.startTime).toBeGreaterThanOrEqual(before - 5);
  expect(insert!.endTime).toBeGreaterThanOrEqual(insert!.startTime);
  expect(insert!.endTime).toBeLessThanOrEqual(Date.now() + 5);
  // Each event of a store call's round trip names that call (`calls`), as the store
  // operation's own event does (`call`).
  expect(insert!.calls).toHaveLength(1);
  expect(insert!.calls[0]).toBeGreaterThan(0);
  appendChannel.unsubscribe(onAppend);
  expect(appendStarts.map((c) => c.call)).toEqual(insert!.calls);

  const shown = JSON.stringify(events);
  for (const secret of ["secret-id", "secret-chunk", "password"]) expect(shown).not.toContain(secret);
  await store.close();
});

it("an error: its event carries err.code and the SQLSTATE", async () => {
  events = [];
  const store = new PostgresStreamStore(DATABASE_URL, {
    statusTable: "pool_diag_missing",
    chunksTable: "pool_diag_missing_chunks",
  });
  const err = await rejection(store.create(uid("x")));
  await eventually(async () => events.some((e) => e.kind === "error" && e.name === "pool:query"));
  const failed = events.find((e) => e.kind === "error" && e.name === "pool:query")!.context;
  expect(failed.error).toEqual({ code: err.code, sqlState: "42P01" });
  await store.close();
});

it("the LISTEN connection: listening, lost, listening again", async () => {
  events = [];
  const app = uid("pool-diag-listen");
  const store = new PostgresStreamStore(urlWithApp(app), tables.stream);
  const id = uid("l");
  await store.create(id);
  const reading = collect(store.readFrom(id, 0));
  await eventually(async () => ends("listener:listen").length >= 1, 20_000);
  expect(ends("listener:listen")[0]).toMatchObject({
    serverAddress: target.hostname,
    database: target.pathname.slice(1),
  });
  // The server drops the LISTEN connection: the listener ends ("lost") and listens again.
  await eventually(async () => {
    const { rows } = await admin.query(
      "SELECT pg_terminate_backend(pid) AS gone FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN%'",
      [app],
    );
    return rows.length > 0;
  }, 20_000);
  await eventually(async () => ends("listener:end").length >= 1 && ends("listener:listen").length >= 2, 30_000);
  expect(ends("listener:end")[0].reason).toBe("lost");
  await store.append(id, "a");
  await store.complete(id);
  expect(await reading).toEqual([{ seq: 1, data: "a" }]);
  await sleep(50);
  await store.close();
}, 60_000);
