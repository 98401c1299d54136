// Model-based test: random sequences of create / append (alone and in concurrent bursts
// through several stores) / read / getStatus / stop / complete / fail / cleanup, spread
// over a store on the Rust pool, a store over a pg.Pool and a store in another process,
// all on the same tables. Every observation is compared with a simple in-memory model:
// seqs gapless and unique, readers see exactly the appended chunks in order, terminal
// states final, errors the original's.
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, freshSchema } from "./helpers.js";

const admin = adminPool();
const jsPool = new pg.Pool({ connectionString: DATABASE_URL, max: 6 });
let tables: Awaited<ReturnType<typeof freshSchema>>;

type Outcome = { ok: true; value: unknown } | { ok: false; code: string; message: string };

/** One store, in this process or another, with every call answering an Outcome. */
interface Driver {
  name: string;
  call(op: string, ...args: unknown[]): Promise<Outcome>;
  close(): Promise<void>;
}

function local(name: string, store: PostgresStreamStore): Driver {
  const ops: Record<string, (...args: never[]) => Promise<unknown>> = {
    create: (id: string) => store.create(id),
    append: (id: string, data: string) => store.append(id, data),
    getStatus: (id: string) => store.getStatus(id),
    stop: (id: string) => store.stop(id),
    complete: (id: string) => store.complete(id),
    fail: (id: string, error: string) => store.fail(id, error),
    cleanup: () => store.cleanup(),
    read: async (id: string, after: number, count: number) => {
      const out: unknown[] = [];
      if (count === 0) return out;
      for await (const chunk of store.readFrom(id, after)) {
        out.push(chunk);
        if (out.length >= count) break;
      }
      return out;
    },
  };
  return {
    name,
    async call(op, ...args) {
      try {
        return { ok: true, value: (await ops[op](...(args as never[]))) ?? null };
      } catch (err) {
        const e = err as Error & { code: string };
        return { ok: false, code: e.code, message: e.message };
      }
    },
    close: () => store.close(),
  };
}

async function remote(options: object): Promise<Driver> {
  const worker: ChildProcess = fork(fileURLToPath(new URL("./fixtures/store-worker.mjs", import.meta.url)), {
    env: { ...process.env, DATABASE_URL, STORE_OPTIONS: JSON.stringify(options) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const waiting = new Map<number, (o: Outcome) => void>();
  let next = 0;
  await new Promise<void>((resolve) => {
    worker.on("message", (message: { ready?: boolean; n?: number } & Outcome) => {
      if (message.ready) return resolve();
      const done = waiting.get(message.n!);
      waiting.delete(message.n!);
      done?.(message);
    });
  });
  return {
    name: "store in another process",
    call(op, ...args) {
      const n = next++;
      return new Promise((resolve) => {
        waiting.set(n, resolve);
        worker.send({ n, op, args });
      });
    },
    close: async () => {
      worker.disconnect();
    },
  };
}

let drivers: Driver[] = [];

beforeAll(async () => {
  tables = await freshSchema(admin);
  // ttlMs 0: a finished stream may be cleaned up at once, so cleanup has work to do.
  const options = { ...tables.stream, ttlMs: 0 };
  drivers = [
    local("Rust pool", new PostgresStreamStore(DATABASE_URL, options)),
    local("pg.Pool", new PostgresStreamStore(jsPool, options)),
    await remote(options),
  ];
}, 60_000);

afterAll(async () => {
  for (const d of drivers) await d.close();
  await tables.drop();
  await jsPool.end();
  await admin.end();
});

// ------------------------------------------------------------------------- the model

interface StreamModel {
  state: "active" | "done" | "stopped" | "error";
  error?: string;
  chunks: string[];
  /** Which creation of the id this is. */
  generation: number;
}

/**
 * What one store knows of one stream it created or appended to (lib/appends.cjs): the
 * seq its next chunk must take, the seq and text of the last chunk it stored, and
 * whether it saw a later generation (it then never appends to the stream again).
 */
interface WriterModel {
  next: number;
  lastSeq: number;
  last?: string;
  fenced: boolean;
  /** Why it is fenced: the reason its refusals give. */
  why?: string;
  /** The generation of the stream this store last created or wrote. */
  generation: number;
}

interface World {
  prefix: string;
  streams: Map<string, StreamModel>;
  /** Per store (its index), per stream id. */
  writers: Array<Map<string, WriterModel>>;
  generations: number;
}

const RECREATED = "it was re-created since this store wrote to it";
/** A count that went back: lost writes or a new generation, which the store cannot tell apart. */
const wentBack = (had: number, now: number) =>
  now === 0
    ? RECREATED
    : `its chunk count went back from ${had} to ${now}: the database lost writes it had acknowledged ` +
      `(a failover to an asynchronous standby), or ${RECREATED}`;

const full = (w: World, key: string) => `${w.prefix}-${key}`;

function expectOk(o: Outcome, what: string): unknown {
  if (!o.ok) throw new Error(`${what}: unexpected ${o.code}: ${o.message}`);
  return o.value;
}

function expectError(o: Outcome, code: string, message: string, what: string) {
  expect(o.ok, what).toBe(false);
  if (!o.ok) {
    expect(o.code, what).toBe(code);
    expect(o.message, what).toBe(message);
  }
}

const keys = fc.constantFrom("a", "b", "c");
const via = fc.nat({ max: 2 });

class Create implements fc.AsyncCommand<World, Driver[]> {
  constructor(readonly key: string, readonly via: number) {}
  check = () => true;
  async run(w: World, d: Driver[]) {
    const id = full(w, this.key);
    const o = await d[this.via].call("create", id);
    if (w.streams.has(id)) expectError(o, "STREAM_EXISTS", `Stream "${id}" already exists`, this.toString());
    else {
      expectOk(o, this.toString());
      w.streams.set(id, { state: "active", chunks: [], generation: ++w.generations });
      w.writers[this.via].set(id, { next: 1, lastSeq: 0, fenced: false, generation: w.generations });
    }
  }
  toString = () => `create(${this.key}) via ${this.via}`;
}

/**
 * What an append through store `via` does, by the store's rule (lib/appends.cjs): the
 * seq it takes, or that it is refused as a later generation ("re-created").
 */
function appendOutcome(w: World, via: number, id: string, s: StreamModel): { seq: number } | { recreated: true; why: string } {
  const writer = w.writers[via].get(id);
  const n = s.chunks.length;
  if (writer === undefined) return { seq: n + 1 };
  if (writer.fenced) return { recreated: true, why: writer.why ?? RECREATED };
  if (n === writer.next - 1) return { seq: n + 1 };
  if (n < writer.next - 1) return { recreated: true, why: wentBack(writer.next - 1, n) };
  // Further along than this store expects: another store appended, or a later generation
  // with another text where this store wrote last.
  if (writer.lastSeq === writer.next - 1 && writer.last !== undefined && s.chunks[writer.lastSeq - 1] !== writer.last) {
    return { recreated: true, why: RECREATED };
  }
  return { seq: n + 1 };
}

function stored(w: World, via: number, id: string, seq: number, data: string) {
  const generation = w.streams.get(id)?.generation ?? 0;
  w.writers[via].set(id, { next: seq + 1, lastSeq: seq, last: data, fenced: false, generation });
}

class Append implements fc.AsyncCommand<World, Driver[]> {
  constructor(readonly key: string, readonly data: string, readonly via: number) {}
  check = () => true;
  async run(w: World, d: Driver[]) {
    const id = full(w, this.key);
    const o = await d[this.via].call("append", id, this.data);
    const s = w.streams.get(id);
    if (s?.state !== "active") {
      // Refused: plainly, or as a later generation when this store wrote an earlier one.
      expect(o.ok, this.toString()).toBe(false);
      if (!o.ok) {
        expect(o.code, this.toString()).toBe("STREAM_NOT_ACTIVE");
        const plain = `Stream "${id}" not found or not active`;
        const fenced = o.message.startsWith(`${plain} (`) && o.message.endsWith(`${RECREATED})`);
        expect(o.message === plain || fenced, `${this.toString()}: ${o.message}`).toBe(true);
        if (fenced) Object.assign(w.writers[this.via].get(id)!, { fenced: true, why: o.message.slice(plain.length + 2, -1) });
      }
      return;
    }
    const outcome = appendOutcome(w, this.via, id, s);
    if ("recreated" in outcome) {
      expectError(o, "STREAM_NOT_ACTIVE", `Stream "${id}" not found or not active (${outcome.why})`, this.toString());
      Object.assign(w.writers[this.via].get(id)!, { fenced: true, why: outcome.why });
      return;
    }
    s.chunks.push(this.data);
    expect(expectOk(o, this.toString()), this.toString()).toBe(s.chunks.length);
    stored(w, this.via, id, s.chunks.length, this.data);
  }
  toString = () => `append(${this.key}, ${JSON.stringify(this.data)}) via ${this.via}`;
}

/**
 * Appends at once through every store: each gets a distinct seq, together gapless. Only
 * on a stream that no store knows from an earlier generation (those are fenced).
 */
class Burst implements fc.AsyncCommand<World, Driver[]> {
  constructor(readonly key: string, readonly count: number) {}
  check = (w: Readonly<World>) => {
    const id = full(w as World, this.key);
    const s = w.streams.get(id);
    // Not when a store knows the stream from an earlier generation: whether it sees that
    // depends on the order the burst's appends land in (a refused one looks it up).
    return (
      s?.state === "active" &&
      w.writers.every((writers, via) => {
        const writer = writers.get(id);
        return !("recreated" in appendOutcome(w as World, via, id, s)) && (writer === undefined || writer.generation === s.generation);
      })
    );
  };
  async run(w: World, d: Driver[]) {
    const id = full(w, this.key);
    const s = w.streams.get(id)!;
    const data = Array.from({ length: this.count }, (_, i) => `burst-${s.chunks.length}-${i}`);
    const outcomes = await Promise.all(data.map((chunk, i) => d[i % d.length].call("append", id, chunk)));
    const seqs = outcomes.map((o) => expectOk(o, this.toString()) as number);
    const from = s.chunks.length + 1;
    expect([...seqs].sort((x, y) => x - y), this.toString()).toEqual(Array.from({ length: this.count }, (_, i) => from + i));
    const bySeq = new Map(seqs.map((seq, i) => [seq, data[i]]));
    for (let seq = from; seq < from + this.count; seq++) s.chunks.push(bySeq.get(seq)!);
    // Each store's appends went in its call order: its last call took its highest seq.
    d.forEach((_, via) => {
      const mine = seqs.flatMap((seq, i) => (i % d.length === via ? [seq] : []));
      if (mine.length > 0) stored(w, via, id, Math.max(...mine), bySeq.get(Math.max(...mine))!);
    });
  }
  toString = () => `burst(${this.key}, ${this.count})`;
}

class Read implements fc.AsyncCommand<World, Driver[]> {
  constructor(readonly key: string, readonly after: number, readonly via: number) {}
  check = () => true;
  async run(w: World, d: Driver[]) {
    const id = full(w, this.key);
    const s = w.streams.get(id);
    const expected = (s?.chunks ?? []).map((data, i) => ({ seq: i + 1, data })).slice(this.after);
    // An active stream's reader would wait for more: take what is there and leave.
    const count = s === undefined || s.state !== "active" ? Number.MAX_SAFE_INTEGER : expected.length;
    const o = await d[this.via].call("read", id, this.after, count);
    expect(expectOk(o, this.toString()), this.toString()).toEqual(expected);
  }
  toString = () => `read(${this.key}, after ${this.after}) via ${this.via}`;
}

class Status implements fc.AsyncCommand<World, Driver[]> {
  constructor(readonly key: string, readonly via: number) {}
  check = () => true;
  async run(w: World, d: Driver[]) {
    const id = full(w, this.key);
    const s = w.streams.get(id);
    const o = await d[this.via].call("getStatus", id);
    const want = s === undefined ? null : { state: s.state, error: s.error, totalChunks: s.chunks.length };
    // undefined does not cross IPC: compare without it.
    expect(JSON.parse(JSON.stringify(expectOk(o, this.toString()))), this.toString()).toEqual(JSON.parse(JSON.stringify(want)));
  }
  toString = () => `getStatus(${this.key}) via ${this.via}`;
}

class Finish implements fc.AsyncCommand<World, Driver[]> {
  constructor(readonly key: string, readonly how: "stop" | "complete" | "fail", readonly via: number) {}
  check = () => true;
  async run(w: World, d: Driver[]) {
    const id = full(w, this.key);
    const args = this.how === "fail" ? [id, "model error"] : [id];
    expectOk(await d[this.via].call(this.how, ...args), this.toString());
    const s = w.streams.get(id);
    if (s?.state === "active") {
      s.state = this.how === "stop" ? "stopped" : this.how === "complete" ? "done" : "error";
      if (this.how === "fail") s.error = "model error";
    }
  }
  toString = () => `${this.how}(${this.key}) via ${this.via}`;
}

/** Cleanup may remove finished streams (ttlMs is 0), never active ones, and counts them. */
class Cleanup implements fc.AsyncCommand<World, Driver[]> {
  constructor(readonly via: number) {}
  check = () => true;
  async run(w: World, d: Driver[]) {
    await new Promise((resolve) => setTimeout(resolve, 2)); // past every finished stream's expiry
    const removed = expectOk(await d[this.via].call("cleanup"), this.toString()) as number;
    let mine = 0;
    for (const [id, s] of w.streams) {
      if (s.state === "active") continue;
      w.streams.delete(id);
      mine += 1;
    }
    // Earlier runs' finished streams went before this run; this run's all go now.
    expect(removed, this.toString()).toBe(mine);
    for (const key of ["a", "b", "c"]) {
      const o = await d[this.via].call("getStatus", full(w, key));
      expect(expectOk(o, this.toString()) === null, `${key} after cleanup`).toBe(!w.streams.has(full(w, key)));
    }
  }
  toString = () => `cleanup() via ${this.via}`;
}

const commands = [
  fc.tuple(keys, via).map(([k, v]) => new Create(k, v)),
  fc.tuple(keys, fc.string({ unit: "grapheme", maxLength: 6 }), via).map(([k, s, v]) => new Append(k, s, v)),
  fc.tuple(keys, fc.integer({ min: 2, max: 9 })).map(([k, n]) => new Burst(k, n)),
  fc.tuple(keys, fc.nat({ max: 6 }), via).map(([k, a, v]) => new Read(k, a, v)),
  fc.tuple(keys, via).map(([k, v]) => new Status(k, v)),
  fc.tuple(keys, fc.constantFrom("stop", "complete", "fail") as fc.Arbitrary<"stop" | "complete" | "fail">, via).map(([k, h, v]) => new Finish(k, h, v)),
  via.map((v) => new Cleanup(v)),
];

describe("the stores against an in-memory model", () => {
  it("agree on every observation over random sequences across three stores and two processes", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.commands(commands, { maxCommands: 60, size: "max" }), async (cmds) => {
        const world: World = {
          prefix: `m${process.pid}-${run++}-${Date.now()}`,
          streams: new Map(),
          writers: drivers.map(() => new Map()),
          generations: 0,
        };
        // Earlier runs' finished streams go first, so each cleanup counts this run's alone.
        await new Promise((resolve) => setTimeout(resolve, 2));
        expectOk(await drivers[0].call("cleanup"), "cleanup before the run");
        await fc.asyncModelRun(() => ({ model: world, real: drivers }), cmds);
      }),
      { numRuns: 40, seed: Number(process.env.MODEL_SEED ?? Date.now() % 2 ** 31) },
    );
  }, 120_000);
});
