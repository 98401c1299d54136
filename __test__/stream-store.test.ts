// The StreamStore contract (docs/contract.md), run over every backend.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore, type PostgresClient } from "../index.js";
import { adminPool, backends, collect, freshSchema, rejection, sleep, uid } from "./helpers.js";

const admin = adminPool();
afterAll(() => admin.end());

describe.each(backends)("PostgresStreamStore over $name", (backend) => {
  let client: string | PostgresClient;
  let closeClient: () => Promise<void>;
  let tables: Awaited<ReturnType<typeof freshSchema>>;
  let store: PostgresStreamStore;

  beforeAll(async () => {
    ({ client, close: closeClient } = await backend.make());
    tables = await freshSchema(admin);
    store = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 10 });
  });

  afterAll(async () => {
    await store.close();
    await closeClient();
    await tables.drop();
  });

  const statusRow = async (id: string) =>
    (await admin.query(`SELECT * FROM ${tables.stream.statusTable} WHERE id = $1`, [id])).rows[0];

  describe("create", () => {
    it("inserts an active stream with no chunks and expiry now + ttlMs", async () => {
      const id = uid();
      const before = Date.now();
      await store.create(id);
      const row = await statusRow(id);
      expect(row.state).toBe("active");
      expect(row.total_chunks).toBe(0);
      expect(row.error).toBeNull();
      const expires = Number(row.expires_at);
      expect(expires).toBeGreaterThanOrEqual(before + 300_000);
      expect(expires).toBeLessThanOrEqual(Date.now() + 300_000);
      expect(await store.getStatus(id)).toEqual({ state: "active", error: undefined, totalChunks: 0 });
    });

    it("rejects an id that exists, in any state, with the original's message", async () => {
      for (const finish of [null, "complete", "stop", "fail"] as const) {
        const id = uid();
        await store.create(id);
        if (finish === "fail") await store.fail(id, "x");
        else if (finish) await store[finish](id);
        const err = await rejection(store.create(id));
        expect(err).toBeInstanceOf(Error);
        expect(err.message).toBe(`Stream "${id}" already exists`);
        expect(err.code).toBe("STREAM_EXISTS");
      }
    });

    it("is atomic: of 50 concurrent creates of one id, exactly one wins", async () => {
      const id = uid();
      const results = await Promise.allSettled(Array.from({ length: 50 }, () => store.create(id)));
      const won = results.filter((r) => r.status === "fulfilled");
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(49);
      for (const r of lost) expect(r.reason.message).toBe(`Stream "${id}" already exists`);
      const { rows } = await admin.query(`SELECT count(*)::int AS n FROM ${tables.stream.statusTable} WHERE id = $1`, [id]);
      expect(rows[0].n).toBe(1);
    });

    it("starts clean when an earlier stream of that id left orphaned chunks", async () => {
      const id = uid();
      await admin.query(`INSERT INTO ${tables.stream.chunksTable} (id, seq, data) VALUES ($1, 1, 'stale')`, [id]);
      await store.create(id);
      expect(await store.append(id, "fresh")).toBe(1);
      await store.complete(id);
      expect(await collect(store.readFrom(id, 0))).toEqual([{ seq: 1, data: "fresh" }]);
    });
  });

  describe("append", () => {
    it("resolves 1-based seqs and stores the chunks", async () => {
      const id = uid();
      await store.create(id);
      expect(await store.append(id, "a")).toBe(1);
      expect(await store.append(id, "b")).toBe(2);
      expect(await store.append(id, "")).toBe(3);
      const { rows } = await admin.query(
        `SELECT seq, data FROM ${tables.stream.chunksTable} WHERE id = $1 ORDER BY seq`,
        [id],
      );
      expect(rows).toEqual([
        { seq: 1, data: "a" },
        { seq: 2, data: "b" },
        { seq: 3, data: "" },
      ]);
      expect((await store.getStatus(id))?.totalChunks).toBe(3);
    });

    it("rejects a missing stream with the original's message", async () => {
      const id = uid();
      const err = await rejection(store.append(id, "x"));
      expect(err.message).toBe(`Stream "${id}" not found or not active`);
      expect(err.code).toBe("STREAM_NOT_ACTIVE");
    });

    it("rejects a finished stream, and writes nothing", async () => {
      for (const finish of ["complete", "stop", "fail"] as const) {
        const id = uid();
        await store.create(id);
        await store.append(id, "kept");
        if (finish === "fail") await store.fail(id, "boom");
        else await store[finish](id);
        const err = await rejection(store.append(id, "late"));
        expect(err.message).toBe(`Stream "${id}" not found or not active`);
        expect(err.code).toBe("STREAM_NOT_ACTIVE");
        expect((await store.getStatus(id))?.totalChunks).toBe(1);
        expect(await collect(store.readFrom(id, 0))).toEqual([{ seq: 1, data: "kept" }]);
      }
    });

    it("gives 200 concurrent appends to one stream unique, gapless seqs", async () => {
      const id = uid();
      await store.create(id);
      const seqs = await Promise.all(Array.from({ length: 200 }, (_, i) => store.append(id, `chunk ${i}`)));
      expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      await store.complete(id);
      const chunks = await collect(store.readFrom(id, 0));
      expect(chunks.map((c) => c.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      // Every append's own seq holds its own data.
      for (let i = 0; i < 200; i++) expect(chunks[seqs[i] - 1].data).toBe(`chunk ${i}`);
      expect((await store.getStatus(id))?.totalChunks).toBe(200);
    });

    it("keeps unicode and 1 MB chunks exactly", async () => {
      const id = uid();
      await store.create(id);
      const samples = ["héllo wörld", "日本語のテキスト", "emoji 🧪🚀👩‍👩‍👧", "\u200b\ttabs\nnewlines\r\n", "x".repeat(1024 * 1024)];
      for (const s of samples) await store.append(id, s);
      await store.complete(id);
      const chunks = await collect(store.readFrom(id, 0));
      expect(chunks.map((c) => c.data)).toEqual(samples);
    });
  });

  describe("readFrom", () => {
    it("yields every chunk after afterSeq, in order, then ends once the stream is done", async () => {
      const id = uid();
      await store.create(id);
      for (let i = 1; i <= 5; i++) await store.append(id, `c${i}`);
      await store.complete(id);
      expect(await collect(store.readFrom(id, 0))).toEqual([1, 2, 3, 4, 5].map((seq) => ({ seq, data: `c${seq}` })));
      expect((await collect(store.readFrom(id, 3))).map((c) => c.seq)).toEqual([4, 5]);
      expect(await collect(store.readFrom(id, 5))).toEqual([]);
      expect(await collect(store.readFrom(id, 99))).toEqual([]);
    });

    it("ends at once, yielding nothing, for a missing stream", async () => {
      expect(await collect(store.readFrom(uid(), 0))).toEqual([]);
    });

    it("waits for new chunks while the stream is active, then ends when it finishes", async () => {
      for (const finish of ["complete", "stop", "fail"] as const) {
        const id = uid();
        await store.create(id);
        await store.append(id, "first");
        const reading = collect(store.readFrom(id, 0));
        await sleep(30);
        await store.append(id, "second");
        await sleep(30);
        await store.append(id, "third");
        if (finish === "fail") await store.fail(id, "oops");
        else await store[finish](id);
        expect((await reading).map((c) => c.data)).toEqual(["first", "second", "third"]);
      }
    });

    it("hands a live reader each chunk as it lands", async () => {
      const id = uid();
      await store.create(id);
      const iterator = store.readFrom(id, 0);
      const next = iterator.next();
      await sleep(20);
      await store.append(id, "live");
      expect(await next).toEqual({ done: false, value: { seq: 1, data: "live" } });
      await store.complete(id);
      expect(await iterator.next()).toEqual({ done: true, value: undefined });
    });

    it("wakes a waiting reader on each write in this process, without waiting out the poll interval", async () => {
      // A poll interval of a minute: only a wake-up can deliver within the test's time.
      const slow = new PostgresStreamStore(client, { ...tables.stream, pollIntervalMs: 60_000 });
      const id = uid();
      await store.create(id);
      const iterator = slow.readFrom(id, 0);
      const first = iterator.next();
      await sleep(50); // the reader has looked, found nothing, and waits
      const started = Date.now();
      await store.append(id, "woken"); // written through another store instance
      expect(await first).toEqual({ done: false, value: { seq: 1, data: "woken" } });
      const second = iterator.next();
      await sleep(20);
      await slow.append(id, "again");
      expect(await second).toEqual({ done: false, value: { seq: 2, data: "again" } });
      const end = iterator.next();
      await sleep(20);
      await store.complete(id); // a finish wakes it too, and it ends
      expect(await end).toEqual({ done: true, value: undefined });
      expect(Date.now() - started).toBeLessThan(20_000);
      await slow.close();
    });

    it("reads fractional, negative and huge afterSeq as the original's seq > afterSeq does", async () => {
      const id = uid();
      await store.create(id);
      for (let i = 1; i <= 3; i++) await store.append(id, `c${i}`);
      await store.complete(id);
      expect((await collect(store.readFrom(id, 1.5))).map((c) => c.seq)).toEqual([2, 3]);
      expect((await collect(store.readFrom(id, -10))).map((c) => c.seq)).toEqual([1, 2, 3]);
      expect(await collect(store.readFrom(id, 1e12))).toEqual([]);
      const err = await rejection(collect(store.readFrom(id, Number.NaN)));
      expect(err.code).toBe("INVALID_ARGUMENT");
    });

    it("is a real async generator: Symbol.asyncIterator, next, return, throw", async () => {
      const id = uid();
      await store.create(id);
      for (let i = 1; i <= 3; i++) await store.append(id, `c${i}`);
      await store.complete(id);
      const gen = store.readFrom(id, 0);
      expect(gen[Symbol.asyncIterator]()).toBe(gen);
      expect(await gen.next()).toEqual({ done: false, value: { seq: 1, data: "c1" } });
      expect(await gen.return(undefined)).toEqual({ done: true, value: undefined });
      expect(await gen.next()).toEqual({ done: true, value: undefined });

      const gen2 = store.readFrom(id, 0);
      await gen2.next();
      await expect(gen2.throw(new Error("stop reading"))).rejects.toThrow("stop reading");
      expect(await gen2.next()).toEqual({ done: true, value: undefined });
    });

    it("lets a reader break early and leaves the others reading", async () => {
      const id = uid();
      await store.create(id);
      await store.append(id, "a");
      await store.append(id, "b");
      const early: string[] = [];
      for await (const chunk of store.readFrom(id, 0)) {
        early.push(chunk.data);
        break;
      }
      expect(early).toEqual(["a"]);
      // A reader that breaks while the stream is still active does not hang or leak a poll.
      const waiting = store.readFrom(id, 2);
      const pending = waiting.next();
      await store.append(id, "c");
      expect(await pending).toEqual({ done: false, value: { seq: 3, data: "c" } });
      expect(await waiting.return(undefined)).toEqual({ done: true, value: undefined });
      const full = collect(store.readFrom(id, 0));
      await store.complete(id);
      expect((await full).map((c) => c.data)).toEqual(["a", "b", "c"]);
    });

    it("replays a long stream in pages, in order", async () => {
      const id = uid();
      await store.create(id);
      await admin.query(
        `INSERT INTO ${tables.stream.chunksTable} (id, seq, data) SELECT $1, g, 'chunk ' || g FROM generate_series(1, 2500) g`,
        [id],
      );
      await admin.query(`UPDATE ${tables.stream.statusTable} SET total_chunks = 2500, state = 'done' WHERE id = $1`, [id]);
      const chunks = await collect(store.readFrom(id, 0));
      expect(chunks).toHaveLength(2500);
      expect(chunks.every((c, i) => c.seq === i + 1 && c.data === `chunk ${i + 1}`)).toBe(true);
    });

    it("steps over chunks deleted by hand, in the middle and at the end, and still ends", async () => {
      const id = uid();
      await store.create(id);
      await admin.query(
        `INSERT INTO ${tables.stream.chunksTable} (id, seq, data)
         SELECT $1, g, 'c' || g FROM generate_series(1, 4000) g WHERE g < 1000 OR g BETWEEN 3500 AND 3990`,
        [id],
      );
      await admin.query(`UPDATE ${tables.stream.statusTable} SET total_chunks = 4000, state = 'done' WHERE id = $1`, [id]);
      const chunks = await collect(store.readFrom(id, 0));
      const expected = [...Array.from({ length: 999 }, (_, i) => i + 1), ...Array.from({ length: 491 }, (_, i) => 3500 + i)];
      expect(chunks.map((c) => c.seq)).toEqual(expected);
      expect(chunks.every((c) => c.data === `c${c.seq}`)).toBe(true);
    });

    it("pages large chunks by size and still yields them all", async () => {
      const id = uid();
      await store.create(id);
      const big = "y".repeat(700 * 1024);
      for (let i = 0; i < 8; i++) await store.append(id, `${i}:${big}`);
      await store.complete(id);
      const chunks = await collect(store.readFrom(id, 0));
      expect(chunks.map((c) => c.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(chunks.every((c, i) => c.data === `${i}:${big}`)).toBe(true);
    });

    it("yields small, multi-byte and large chunks mixed across pages exactly", async () => {
      const id = uid();
      const large = new Set([1, 5, 2000, 2001, 2002, 2999, 3000]);
      const data = (seq: number) =>
        large.has(seq) ? `${seq}é${"L".repeat(3000)}` : seq % 7 === 0 ? `${seq} 日本🧪` : `t${seq} `;
      await admin.query(`INSERT INTO ${tables.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ($1, 'done', 3000, $2)`, [id, Date.now() + 1e6]);
      await admin.query(`INSERT INTO ${tables.stream.chunksTable} (id, seq, data) SELECT $1, g, d FROM unnest($2::text[]) WITH ORDINALITY AS x(d, g)`, [
        id,
        Array.from({ length: 3000 }, (_, i) => data(i + 1)),
      ]);
      const chunks = await collect(store.readFrom(id, 0));
      expect(chunks.length).toBe(3000);
      chunks.forEach((c, i) => {
        if (c.seq !== i + 1 || c.data !== data(i + 1)) throw new Error(`chunk ${i + 1} came back as ${c.seq}: ${c.data.slice(0, 20)}`);
      });
      expect((await collect(store.readFrom(id, 2001))).map((c) => c.seq)).toEqual(Array.from({ length: 999 }, (_, i) => 2002 + i));
    });
  });

  describe("getStatus / stop / complete / fail", () => {
    it("is null for a missing stream", async () => {
      expect(await store.getStatus(uid())).toBeNull();
    });

    it("moves an active stream to stopped, done or error(message), with a ttl counted from then", async () => {
      for (const [finish, state, error] of [
        ["stop", "stopped", undefined],
        ["complete", "done", undefined],
        ["fail", "error", "model overloaded"],
      ] as const) {
        const id = uid();
        await store.create(id);
        await store.append(id, "x");
        await admin.query(`UPDATE ${tables.stream.statusTable} SET expires_at = 0 WHERE id = $1`, [id]);
        const before = Date.now();
        if (finish === "fail") await store.fail(id, error!);
        else await store[finish](id);
        expect(await store.getStatus(id)).toEqual({ state, error, totalChunks: 1 });
        expect(Number((await statusRow(id)).expires_at)).toBeGreaterThanOrEqual(before + 300_000);
      }
    });

    it("leaves a finished stream as it is, and resolves for a missing one", async () => {
      const id = uid();
      await store.create(id);
      await store.complete(id);
      await store.stop(id);
      await store.fail(id, "too late");
      expect(await store.getStatus(id)).toEqual({ state: "done", error: undefined, totalChunks: 0 });
      const failed = uid();
      await store.create(failed);
      await store.fail(failed, "first");
      await store.fail(failed, "second");
      await store.complete(failed);
      expect(await store.getStatus(failed)).toEqual({ state: "error", error: "first", totalChunks: 0 });
      const missing = uid();
      await store.stop(missing);
      await store.complete(missing);
      await store.fail(missing, "x");
      expect(await store.getStatus(missing)).toBeNull();
    });
  });

  describe("bad input", () => {
    it("rejects ids and chunks that are not strings, empty ids and NUL characters, writing nothing", async () => {
      const id = uid();
      await store.create(id);
      const cases: Array<[string, () => Promise<unknown>]> = [
        ["numeric id", () => store.create(42 as unknown as string)],
        ["undefined id", () => store.append(undefined as unknown as string, "x")],
        ["empty id", () => store.create("")],
        ["NUL in id", () => store.create("a\u0000b")],
        ["object chunk", () => store.append(id, { text: "x" } as unknown as string)],
        ["NUL in chunk", () => store.append(id, "before\u0000after")],
        ["1 MB id", () => store.create("i".repeat(1024 * 1024))],
        ["non-string error", () => store.fail(id, 7 as unknown as string)],
        ["afterSeq object", () => collect(store.readFrom(id, {} as unknown as number))],
      ];
      for (const [name, call] of cases) {
        const err = await rejection(call());
        expect(err.code, name).toBe("INVALID_ARGUMENT");
        expect(err.message.length, name).toBeGreaterThan(10);
      }
      expect(await store.getStatus(id)).toEqual({ state: "active", error: undefined, totalChunks: 0 });
    });
  });
});
