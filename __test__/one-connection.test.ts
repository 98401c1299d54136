// One connection: a pg.Client (one for all of a store's calls, queued in the driver,
// lib/driver.cjs), or a Rust pool of one. Each call settles by its own deadline, the
// queue is bounded, and a cancel request sent for one statement can never stop the next.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStoreError, PostgresStreamStore } from "../index.js";
import { FaultProxy } from "./fixtures/fault-proxy.js";
import { DATABASE_URL, adminPool, eventually, freshSchema, lockRow, rejection, sleep, timed, uid } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
let proxy: FaultProxy;

beforeAll(async () => {
  tables = await freshSchema(admin);
  const target = new URL(DATABASE_URL);
  proxy = await FaultProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
});

afterAll(async () => {
  await proxy.close();
  await tables.drop();
  await admin.end();
});

const lockStream = (id: string) => lockRow(admin, tables.stream.statusTable, id);

describe("one connection (a pg.Client, or a Rust pool of one)", () => {
  it("calls queued behind a stuck one settle within their deadline", async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    const store = new PostgresStreamStore(client, { ...tables.stream, queryTimeoutMs: 1_000 });
    const id = uid("client-q");
    await store.create(id);
    const lock = await lockStream(id);
    const started = Date.now();
    const calls = await Promise.all(Array.from({ length: 10 }, () => timed(store.append(id, "x"))));
    for (const r of calls) {
      // QUERY_TIMEOUT; on a loaded machine the cancel of the one sent may not be settled
      // in time, which the store says as it is (APPEND_OUTCOME_UNKNOWN). Either way, by
      // the call's deadline.
      expect(["QUERY_TIMEOUT", "APPEND_OUTCOME_UNKNOWN"]).toContain(r.error?.code);
      expect(r.ms).toBeLessThan(1_000 * 1.1 + 100);
    }
    expect(Date.now() - started).toBeLessThan(1_300);
    await lock.release();
    await client.end().catch(() => {});
  });

  it("a cancel that reaches the server late never stops the next statement", async () => {
    // The cancel request for a statement near its deadline travels on a connection of its
    // own. Held up in the proxy, it reaches the server only after that statement finished:
    // the next statement must not be on the wire yet, or the server cancels that one.
    const client = new pg.Client({ connectionString: proxy.url(DATABASE_URL) });
    await client.connect();
    const store = new PostgresStreamStore(client, { ...tables.stream, queryTimeoutMs: 2_000 });
    const [first, second] = [uid("late-a"), uid("late-b")];
    await store.create(first);
    await store.create(second);
    const accepted = proxy.accepted;
    proxy.set("stall", { which: "new" }); // only connections opened from now: the cancel's
    const lockA = await lockStream(first);
    const held = store.append(first, "a");
    // Near the append's deadline the driver asks for the cancel.
    await eventually(async () => proxy.accepted === accepted + 1, 5_000);
    expect(proxy.accepted).toBe(accepted + 1);
    const lockB = await lockStream(second);
    await lockA.release();
    expect(await held).toBe(1); // done before the cancel arrived
    const next = timed(store.complete(second)); // held by lockB until after the cancel
    await sleep(150);
    proxy.release(); // the cancel request reaches the server now
    await sleep(150);
    await lockB.release();
    const { error } = await next;
    expect(error).toBeUndefined();
    expect(await store.getStatus(second)).toMatchObject({ state: "done" });
    await client.end();
  });

  it("the Rust pool too: a connection whose statement was cancelled is not used again", async () => {
    // The same race on a pooled connection (poolSize 1, so the next statement would take
    // the same connection): a cancel request held up until the next statement runs.
    const url = new URL(proxy.url(DATABASE_URL));
    url.searchParams.set("application_name", uid("late-cancel"));
    const store = new PostgresStreamStore(url.href, { ...tables.stream, queryTimeoutMs: 2_000, poolSize: 1 });
    const [first, second] = [uid("late-a"), uid("late-b")];
    await store.create(first);
    await store.create(second);
    const accepted = proxy.accepted;
    proxy.set("stall", { which: "new" }); // only connections opened from now: the cancel's
    const lockA = await lockStream(first);
    const held = store.complete(first);
    // Near the statement's deadline the pool sends the cancel request.
    await eventually(async () => proxy.accepted === accepted + 1, 5_000);
    const lockB = await lockStream(second);
    await lockA.release();
    await held; // done before the cancel arrived
    const next = timed(store.complete(second)); // held by lockB until after the cancel
    await sleep(150);
    proxy.release(); // the cancel request reaches the server now
    proxy.set("pass", { which: "new" });
    await sleep(150);
    await lockB.release();
    const { error } = await next;
    expect(error).toBeUndefined();
    expect(await store.getStatus(second)).toMatchObject({ state: "done" });
    await store.close();
  });

  it("a pg.Pool too: a client whose statement was cancelled is not given back", async () => {
    // The same race on a pooled pg client (max 1, so the next statement would take it).
    const pool = new pg.Pool({ connectionString: proxy.url(DATABASE_URL), max: 1, connectionTimeoutMillis: 5_000 });
    pool.on("error", () => {});
    const store = new PostgresStreamStore(pool, { ...tables.stream, queryTimeoutMs: 2_000 });
    const [first, second] = [uid("late-a"), uid("late-b")];
    await store.create(first);
    await store.create(second);
    const accepted = proxy.accepted;
    proxy.set("stall", { which: "new" }); // only connections opened from now: the cancel's
    const lockA = await lockStream(first);
    const held = store.complete(first);
    await eventually(async () => proxy.accepted === accepted + 1, 5_000);
    const lockB = await lockStream(second);
    await lockA.release();
    await held; // done before the cancel arrived
    const next = timed(store.complete(second)); // held by lockB until after the cancel
    await sleep(150);
    proxy.release(); // the cancel request reaches the server now
    proxy.set("pass", { which: "new" });
    await sleep(150);
    await lockB.release();
    const { error } = await next;
    expect(error).toBeUndefined();
    expect(await store.getStatus(second)).toMatchObject({ state: "done" });
    await store.close();
    await pool.end();
  });

  it("refuses calls beyond 20,000 waiting with OVERLOADED, at once", async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    const store = new PostgresStreamStore(client, { ...tables.stream, queryTimeoutMs: 2_000 });
    const id = uid("overload");
    await store.create(id);
    const lock = await lockStream(id);
    const stuck = store.complete(id); // holds the one connection, waiting for the lock
    stuck.catch(() => {});
    const waiting = Array.from({ length: 20_000 }, () => store.getStatus(id));
    for (const call of waiting) call.catch(() => {});
    const err = await rejection(store.getStatus(id));
    expect([err instanceof PostgresStoreError, err.code, err.retryable]).toEqual([true, "OVERLOADED", true]);
    await lock.release();
    await Promise.allSettled([stuck, ...waiting]);
    expect(await store.getStatus(id)).toMatchObject({ state: "done" });
    await client.end();
  }, 20_000);
});
