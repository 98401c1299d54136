// A reader waiting at the end of a stream that its own store appends to from JS (a pg
// client's appends, lib/appends.cjs) is fed each chunk as it is stored: Rust moves the
// reader's cursor and keeps it waiting (src/reader/pause.rs), and JS hands it the chunk
// (lib/stream-store.cjs). These tests check that what such a reader yields is exact in
// every case where feeding stops or must not happen: a consumer that falls behind, two
// readers, another store or another producer writing the same stream, a finish, a break,
// an observed read.
import { createRequire } from "node:module";
import diagnostics_channel from "node:diagnostics_channel";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, collect, eventually, freshSchema, sleep, uid } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;
let pool: pg.Pool;

// The native reader's page calls, counted: a fed reader makes none per chunk.
const { NativeStreamReader } = createRequire(import.meta.url)("../lib/binding.cjs");
const nextPage = NativeStreamReader.prototype.nextPage;
let pages = 0;

beforeAll(async () => {
  tables = await freshSchema(admin);
  pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });
  NativeStreamReader.prototype.nextPage = function (...args: unknown[]) {
    pages++;
    return nextPage.apply(this, args);
  };
});
afterAll(async () => {
  NativeStreamReader.prototype.nextPage = nextPage;
  await pool.end();
  await tables.drop();
  await admin.end();
});
let stores: PostgresStreamStore[] = [];
afterEach(async () => {
  await Promise.all(stores.map((s) => s.close()));
  stores = [];
});

function storeOn(client: pg.Pool | pg.Client = pool) {
  // A poll interval of a minute: only a wake-up or a feed delivers within the tests' time.
  const store = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 60_000 });
  stores.push(store);
  return store;
}

const expected = (n: number, from = 1) =>
  Array.from({ length: n }, (_, i) => ({ seq: from + i, data: `c${from + i}` }));

/** Resolves once the store's reader(s) wait at the end of the stream. */
async function waitingReaders(store: PostgresStreamStore, n = 1) {
  await eventually(async () => store.stats().readersWaiting >= n, 5_000);
}

describe("a reader fed by its own store's appends", () => {
  it("yields every chunk exactly, with almost no page crossing from Rust, through pg.Pool and pg.Client", async () => {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      for (const store of [storeOn(), storeOn(client)]) {
        const id = uid("fed");
        await store.create(id);
        const reading = collect(store.readFrom(id, 0));
        await waitingReaders(store);
        const before = pages;
        for (let i = 1; i <= 300; i++) expect(await store.append(id, `c${i}`)).toBe(i);
        const during = pages - before;
        await store.complete(id);
        expect(await reading).toEqual(expected(300));
        // Woken once per 64 chunks fed at most, else fed: far fewer pages than chunks.
        expect(during).toBeLessThan(30);
      }
    } finally {
      await client.end();
    }
  });

  it("a consumer that falls far behind still gets every chunk once, in order", async () => {
    const store = storeOn();
    const id = uid("slow");
    await store.create(id);
    const reader = store.readFrom(id, 0);
    const first = reader.next();
    await waitingReaders(store);
    // 200 appends while the consumer takes nothing after the first: beyond what one wait
    // takes (64), the reader is woken and reads the rest from where Rust's cursor is.
    for (let i = 1; i <= 200; i++) await store.append(id, `c${i}`);
    expect(await first).toEqual({ done: false, value: { seq: 1, data: "c1" } });
    const got = [];
    for (let i = 2; i <= 200; i++) {
      const { value } = await reader.next();
      got.push(value);
      if (i % 50 === 0) await sleep(5);
    }
    expect(got).toEqual(expected(199, 2));
    const end = reader.next();
    await store.complete(id);
    expect(await end).toEqual({ done: true, value: undefined });
  });

  it("two readers get their own chunk objects, and a break leaves the other reading", async () => {
    const store = storeOn();
    const id = uid("two");
    await store.create(id);
    const a = store.readFrom(id, 0);
    const b = store.readFrom(id, 0);
    const [a1, b1] = [a.next(), b.next()];
    await waitingReaders(store, 2);
    await store.append(id, "c1");
    const [ra, rb] = await Promise.all([a1, b1]);
    expect(ra.value).toEqual({ seq: 1, data: "c1" });
    expect(rb.value).not.toBe(ra.value);
    (ra.value as { data: string }).data = "changed by a";
    expect(rb.value).toEqual({ seq: 1, data: "c1" });
    const a2 = a.next();
    await store.append(id, "c2");
    expect((await a2).value).toEqual({ seq: 2, data: "c2" });
    await a.return(undefined); // a leaves while b has not taken chunk 2 yet
    for (let i = 3; i <= 100; i++) await store.append(id, `c${i}`);
    const rest = [];
    for (let i = 2; i <= 100; i++) rest.push((await b.next()).value);
    expect(rest).toEqual(expected(99, 2));
    const end = b.next();
    await eventually(async () => store.stats().readersWaiting === 1, 5_000); // b alone waits
    await store.complete(id);
    expect(await end).toEqual({ done: true, value: undefined });
    await eventually(async () => store.stats().readersWaiting === 0, 5_000);
  });

  it("chunks from another store and another producer come in order with the fed ones", async () => {
    const store = storeOn();
    const other = storeOn(); // another store on the same pool: its chunks wake the reader
    const elsewhere = new PostgresStreamStore(DATABASE_URL, tables.stream); // another client
    stores.push(elsewhere);
    const id = uid("mixed");
    await store.create(id);
    const reading = collect(store.readFrom(id, 0));
    await waitingReaders(store);
    const writers = [store, other, elsewhere];
    for (let i = 1; i <= 240; i++) {
      const writer = writers[i % 7 === 0 ? 1 : i % 11 === 0 ? 2 : 0];
      expect(await writer.append(id, `c${i}`)).toBe(i);
    }
    // Two producers at once: each append goes after the other's, seqs stay gapless.
    const racing = await Promise.all([store.append(id, "x"), other.append(id, "x"), store.append(id, "x")]);
    expect([...racing].sort((x, y) => x - y)).toEqual([241, 242, 243]);
    await store.complete(id);
    const got = await reading;
    expect(got.slice(0, 240)).toEqual(expected(240));
    expect(got.slice(240)).toEqual([241, 242, 243].map((seq) => ({ seq, data: "x" })));
  });

  it("a fed reader's next() calls made at once, its return() and throw() while it waits, behave as a generator's", async () => {
    const store = storeOn();
    const id = uid("calls");
    await store.create(id);
    const reader = store.readFrom(id, 0);
    expect(Object.prototype.toString.call(reader)).toBe("[object AsyncGenerator]");
    const first = reader.next();
    await waitingReaders(store);
    await store.append(id, "c1");
    expect(await first).toEqual({ done: false, value: { seq: 1, data: "c1" } });
    // Three calls at once, while nothing is fed yet: each gets the next chunk, in order.
    const three = [reader.next(), reader.next(), reader.next()];
    for (let i = 2; i <= 4; i++) await store.append(id, `c${i}`);
    expect(await Promise.all(three)).toEqual(expected(3, 2).map((value) => ({ done: false, value })));
    // return() while a call waits for a chunk: that call ends as done, and so does the reader.
    const waiting = reader.next();
    expect(await reader.return(undefined)).toEqual({ done: true, value: undefined });
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(await reader.next()).toEqual({ done: true, value: undefined });
    await eventually(async () => store.stats().readersWaiting === 0, 5_000);
    // throw() while it waits rejects with the error thrown, and ends the reader.
    const other = store.readFrom(id, 4);
    const pending = other.next();
    await waitingReaders(store);
    await store.append(id, "c5");
    expect((await pending).value).toEqual({ seq: 5, data: "c5" });
    const left = other.next();
    const thrown = new Error("the app gave up");
    await expect(other.throw(thrown)).rejects.toBe(thrown);
    expect(await left).toEqual({ done: true, value: undefined });
    await eventually(async () => store.stats().readersWaiting === 0, 5_000);
    // Chunks fed before the finish still come, then the end.
    const last = store.readFrom(id, 5);
    const at6 = last.next();
    await waitingReaders(store);
    await store.append(id, "c6");
    await at6;
    await store.append(id, "c7");
    await store.append(id, "c8");
    await store.complete(id);
    expect(await collect(last)).toEqual(expected(2, 7));
  });

  it("a reader observed by a diagnostics subscriber is not fed, and gets every chunk the same", async () => {
    const store = storeOn();
    const id = uid("observed");
    await store.create(id);
    let reads = 0;
    const onRead = () => reads++;
    const channel = diagnostics_channel.tracingChannel("aibind-rs:stream:read");
    const handlers = { start: onRead, end() {}, asyncStart() {}, asyncEnd() {}, error() {} };
    channel.subscribe(handlers);
    try {
      const reading = collect(store.readFrom(id, 0));
      await waitingReaders(store);
      for (let i = 1; i <= 40; i++) await store.append(id, `c${i}`);
      await store.complete(id);
      expect(await reading).toEqual(expected(40));
      expect(reads).toBeGreaterThanOrEqual(20); // a traced page per wake, not fed
    } finally {
      channel.unsubscribe(handlers);
    }
  });
});
