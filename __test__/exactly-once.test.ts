// Exactly-once appends under network faults, through the public API only. A TCP fault proxy
// (fixtures/fault-proxy.ts) sits between the store and PostgreSQL and resets connections,
// stalls them past queryTimeoutMs, drops replies after the commit, and leaves connections
// half-open. The contract:
//   - append resolves with seq n: the chunk is stored exactly once, at seq n;
//   - append rejects with any code but APPEND_OUTCOME_UNKNOWN: the chunk is not stored,
//     and never will be (no late commit);
//   - a producer's chunks are stored in call order, seqs gapless 1..N;
//   - getStatus() right after a rejection is not contradicted later (no late commit);
//   - every call settles within queryTimeoutMs x 1.1 + 200 ms (the single-fault tests);
//   - after all pooled connections go half-open, the store works again within
//     queryTimeoutMs + a few seconds.
// Each producer appends sequentially, awaiting each append (like an LLM producer), and
// always goes on with the next chunk; each chunk's text (`p3-c00042`) names its call.
import pg from "pg";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { PostgresStreamStore, type PostgresClient } from "../index.js";
import { FaultProxy } from "./fixtures/fault-proxy.js";
import { DATABASE_URL, adminPool, freshSchema, sleep, uid } from "./helpers.js";

const QUERY_TIMEOUT_MS = 1500;
const SETTLE_BOUND_MS = QUERY_TIMEOUT_MS * 1.1 + 200;
const LATE_COMMIT_WAIT_MS = 2 * QUERY_TIMEOUT_MS + 1000;
/** A call that has not settled by then is recorded as hung (a violation) and its producer stops. */
const HUNG_MS = 10_000;
const UNKNOWN = "APPEND_OUTCOME_UNKNOWN";

const url = new URL(DATABASE_URL);
const target = { host: url.hostname || "127.0.0.1", port: Number(url.port || 5432) };

const backends = [
  {
    name: "connection string (Rust pool)",
    make: (proxy: FaultProxy) => ({ client: proxy.url(DATABASE_URL) as string | PostgresClient, close: async () => {} }),
  },
  {
    name: "pg.Pool",
    make: (proxy: FaultProxy) => {
      // connectionTimeoutMillis: see healing.test.ts (a handshake blackholed by a fault).
      const pool = new pg.Pool({ connectionString: proxy.url(DATABASE_URL), max: 10, connectionTimeoutMillis: 5_000 });
      pool.on("error", () => {}); // idle clients lose their connection to the faults, as an app must expect
      return { client: pool as string | PostgresClient, close: () => pool.end() };
    },
  },
];

/** Resolves what `promise` settles to, or "timeout" after `ms` (teardown and watchdogs). */
const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise.catch(() => undefined), sleep(ms).then(() => "timeout" as const)]);

interface Call {
  producer: number;
  index: number;
  text: string;
  ms: number;
  outcome: "resolved" | "rejected" | "hung";
  seq?: number;
  code?: string;
  retryable?: boolean;
  message?: string;
  /** totalChunks from getStatus() right after a rejection (null: getStatus failed too). */
  statusTotal?: number | null;
}

/** One stream with one sequential producer. */
class Producer {
  readonly calls: Call[] = [];
  stopped = false;
  constructor(
    readonly store: PostgresStreamStore,
    readonly p: number,
    readonly id: string,
    readonly checkStatus = true,
  ) {}

  async append(): Promise<Call> {
    const index = this.calls.length + 1;
    const call: Call = { producer: this.p, index, text: `p${this.p}-c${String(index).padStart(5, "0")}`, ms: 0, outcome: "hung" };
    this.calls.push(call);
    const started = Date.now();
    const settled = await Promise.race([
      this.store.append(this.id, call.text).then(
        (seq) => ({ seq }),
        (err) => ({ err: err as Error & { code?: string; retryable?: boolean } }),
      ),
      sleep(HUNG_MS).then(() => "hung" as const),
    ]);
    call.ms = Date.now() - started;
    if (settled === "hung") {
      this.stopped = true; // a later call could race the hung one: stop this producer
    } else if ("seq" in settled) {
      Object.assign(call, { outcome: "resolved", seq: settled.seq });
    } else {
      const { code, retryable, message } = settled.err;
      Object.assign(call, { outcome: "rejected", code: code ?? "(none)", retryable, message });
      if (this.checkStatus) {
        const status = await within(this.store.getStatus(this.id), HUNG_MS);
        call.statusTotal = status && status !== "timeout" ? status.totalChunks : null;
      }
    }
    return call;
  }
}

interface Setup {
  proxy: FaultProxy;
  store: PostgresStreamStore;
  producers: Producer[];
  verify(): Promise<Record<string, string[]>>;
}

const admin = adminPool();
const teardowns: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const teardown of teardowns.splice(0).reverse()) await within(teardown(), 5000);
});
afterAll(() => admin.end());

async function setup(backend: (typeof backends)[number], streams: number, checkStatus = true): Promise<Setup> {
  const schema = await freshSchema(admin);
  teardowns.push(() => schema.drop());
  const proxy = await FaultProxy.start(target);
  const { client, close } = backend.make(proxy);
  const store = new PostgresStreamStore(client, { ...schema.stream, queryTimeoutMs: QUERY_TIMEOUT_MS });
  // Run last to first: the store, the proxy (which ends stuck connections), the client, the schema.
  teardowns.push(close, () => proxy.close(), () => store.close());
  const producers: Producer[] = [];
  for (let p = 1; p <= streams; p++) {
    const id = uid(`faults-p${p}`);
    await store.create(id);
    producers.push(new Producer(store, p, id, checkStatus));
  }
  return { proxy, store, producers, verify: () => verify(schema.stream, producers) };
}

/** Reads every stream's rows directly and lists each breach of the contract, by kind. */
async function verify(tables: { chunksTable: string; statusTable: string }, producers: Producer[]) {
  const v: Record<string, string[]> = {
    hung: [], // a call that never settled
    resolvedNotAtSeq: [], // (a) a resolved chunk missing from its returned seq
    rejectedStored: [], // (b) a rejected (not UNKNOWN) chunk stored
    storedTwice: [], // (c)
    foreignRow: [], // a row whose text is no call's
    outOfOrder: [], // (d) stored chunks not in call order
    seqGaps: [], // (d) seqs not 1..N
    totalMismatch: [], // the status row's total_chunks is not N
    statusContradicted: [], // (e) a row committed after getStatus() answered
  };
  for (const producer of producers) {
    const rows = (await admin.query(`SELECT seq, data FROM ${tables.chunksTable} WHERE id = $1 ORDER BY seq`, [producer.id])).rows as {
      seq: number;
      data: string;
    }[];
    const status = (await admin.query(`SELECT total_chunks FROM ${tables.statusTable} WHERE id = $1`, [producer.id])).rows[0];
    const byText = new Map<string, number[]>();
    for (const row of rows) byText.set(row.data, [...(byText.get(row.data) ?? []), row.seq]);
    const byIndex = new Map(producer.calls.map((call) => [call.text, call]));
    const p = `p${producer.p}`;
    rows.forEach((row, i) => {
      if (row.seq !== i + 1) v.seqGaps.push(`${p}: seq ${row.seq} at position ${i + 1}`);
      if (!byIndex.has(row.data)) v.foreignRow.push(`${p}: seq ${row.seq} holds ${JSON.stringify(row.data)}`);
      const before = i > 0 ? byIndex.get(rows[i - 1].data) : undefined;
      const call = byIndex.get(row.data);
      if (before && call && call.index <= before.index) v.outOfOrder.push(`${p}: seq ${row.seq} is call ${call.index}, after call ${before.index}`);
    });
    if (status?.total_chunks !== rows.length) v.totalMismatch.push(`${p}: total_chunks ${status?.total_chunks}, ${rows.length} rows`);
    for (const call of producer.calls) {
      const seqs = byText.get(call.text) ?? [];
      const what = `${call.text} (${call.outcome}${call.code ? ` ${call.code}` : ""}${call.seq ? ` seq ${call.seq}` : ""})`;
      if (seqs.length > 1) v.storedTwice.push(`${what} at seqs ${seqs.join(",")}`);
      if (call.outcome === "hung") v.hung.push(what);
      if (call.outcome === "resolved" && !seqs.includes(call.seq!)) v.resolvedNotAtSeq.push(`${what} stored at [${seqs.join(",")}]`);
      if (call.outcome === "rejected" && call.code !== UNKNOWN && seqs.length > 0) v.rejectedStored.push(`${what} stored at ${seqs.join(",")}`);
      if (call.outcome === "rejected" && typeof call.statusTotal === "number") {
        // Everything of calls up to this one was stored by the time getStatus() answered
        // (this producer waits for each call): at seq <= statusTotal, and nothing later.
        const late = rows.filter((row) => (byIndex.get(row.data)?.index ?? 0) <= call.index && row.seq > call.statusTotal!);
        const early = rows.filter((row) => row.seq <= call.statusTotal! && (byIndex.get(row.data)?.index ?? 0) > call.index);
        if (late.length || early.length || rows.length < call.statusTotal) {
          v.statusContradicted.push(`${what}: getStatus said ${call.statusTotal}; later rows ${late.map((r) => `${r.data}@${r.seq}`).join(",")}`);
        }
      }
    }
  }
  return v;
}

function summarize(name: string, producers: Producer[], extra = "") {
  const calls = producers.flatMap((p) => p.calls);
  const rejected: Record<string, number> = {};
  for (const call of calls) if (call.outcome === "rejected") rejected[call.code!] = (rejected[call.code!] ?? 0) + 1;
  const resolved = calls.filter((c) => c.outcome === "resolved").length;
  const hung = calls.filter((c) => c.outcome === "hung").length;
  const slow = calls.filter((c) => c.ms > SETTLE_BOUND_MS).length;
  const maxMs = Math.max(0, ...calls.map((c) => c.ms));
  console.log(
    `[faults] ${name}: appends=${calls.length} resolved=${resolved} rejected=${JSON.stringify(rejected)} ` +
      `unknown=${rejected[UNKNOWN] ?? 0} hung=${hung} slower-than-${Math.round(SETTLE_BOUND_MS)}ms=${slow} max=${maxMs}ms${extra}`,
  );
  return { calls, resolved };
}

/** Fails with the count of every kind of breach, logging a few examples of each. */
function expectNoViolations(name: string, v: Record<string, string[]>) {
  for (const [kind, list] of Object.entries(v)) {
    if (list.length) console.log(`[faults] ${name}: ${kind} x${list.length}: ${list.slice(0, 5).join(" | ")}`);
  }
  expect.soft(Object.fromEntries(Object.entries(v).map(([kind, list]) => [kind, list.length]))).toEqual(
    Object.fromEntries(Object.keys(v).map((kind) => [kind, 0])),
  );
}

describe.each(backends)("faults under $name", (backend) => {
  it("chaos: resets, stalls past the timeout, replies dropped after commit, half-open connections", async () => {
    // 8 producers x 400 chunks, each paced at one chunk per 40 ms (about 16 s, so the chaos
    // gets ~100 ticks however fast the store is); a producer held up by a fault catches up
    // without pausing. Hard stop at 28 s.
    const STREAMS = 8;
    const CALLS_PER_PRODUCER = 400;
    const CHUNK_EVERY_MS = 40;
    const PRODUCE_FOR_MS = 28_000;
    const { proxy, producers, verify } = await setup(backend, STREAMS);
    const chaos = proxy.chaos({
      seed: 20240611,
      everyMs: 150,
      stallMs: 2 * QUERY_TIMEOUT_MS,
      resetAfterMs: 400,
      maxBlackholed: 4,
    });
    const started = Date.now();
    const until = started + PRODUCE_FOR_MS;
    await Promise.all(
      producers.map(async (producer) => {
        while (!producer.stopped && producer.calls.length < CALLS_PER_PRODUCER && Date.now() < until) {
          await producer.append();
          await sleep(started + producer.calls.length * CHUNK_EVERY_MS - Date.now()); // the model's pace
        }
      }),
    );
    chaos.stop();
    const producedMs = Date.now() - started;
    await sleep(LATE_COMMIT_WAIT_MS); // stalls end and late commits land
    const { calls, resolved } = summarize(
      backend.name,
      producers,
      ` in ${producedMs}ms; chaos=${JSON.stringify(chaos.counts)} connections=${proxy.accepted}`,
    );
    expectNoViolations(backend.name, await verify());
    expect.soft(calls.length).toBeGreaterThanOrEqual(1000);
    expect.soft(resolved / calls.length, "share of appends resolved").toBeGreaterThan(0.5);
    expect.soft(chaos.events.length).toBeGreaterThanOrEqual(20);
  }, 60_000);

  describe("one append under one fault: the contract, settled within queryTimeoutMs x 1.1 + 200 ms", () => {
    const single = async (fault: (proxy: FaultProxy) => void, afterwards?: (proxy: FaultProxy, started: number) => Promise<void>) => {
      const { proxy, producers, verify } = await setup(backend, 1);
      const [producer] = producers;
      for (let i = 0; i < 3; i++) expect((await producer.append()).outcome).toBe("resolved"); // a pooled connection
      fault(proxy);
      const started = Date.now();
      const call = await producer.append();
      const faulted = proxy.connections.filter((c) => c.mode !== "pass").length;
      summarize(`${backend.name} ${expect.getState().currentTestName}`, producers, `; faulted connections=${faulted}`);
      console.log(`[faults]   the faulted call: ${JSON.stringify(call)}`);
      expect.soft(call.outcome).not.toBe("hung");
      expect.soft(call.ms, "the call settled within queryTimeoutMs x 1.1 + 200 ms").toBeLessThanOrEqual(SETTLE_BOUND_MS);
      if (afterwards) await afterwards(proxy, started);
      await sleep(Math.max(0, started + LATE_COMMIT_WAIT_MS - Date.now()));
      expectNoViolations(backend.name, await verify());
    };

    it("a half-open (blackholed) connection", () => single((proxy) => proxy.set("blackhole", { which: "existing" })), 30_000);

    it("replies dropped after the commit, then the connection reset", () =>
      single((proxy) => proxy.set("dropReplies", { which: "existing", resetAfterMs: 500 })), 30_000);

    it("stalled past the timeout, then released (the statement arrives late)", () =>
      single(
        (proxy) => proxy.set("stall", { which: "existing" }),
        async (proxy, started) => {
          await sleep(Math.max(0, started + 2 * QUERY_TIMEOUT_MS - Date.now()));
          proxy.release();
        },
      ), 30_000);
  });

  it("recovers after every pooled connection goes half-open: works again within queryTimeoutMs + 4 s", async () => {
    const { proxy, producers, verify } = await setup(backend, 8, false);
    for (let round = 0; round < 3; round++) await Promise.all(producers.map((p) => p.append())); // open several connections
    const opened = proxy.live().length;
    proxy.set("blackhole", { which: "existing" }); // new connections pass
    const started = Date.now();
    const deadline = started + QUERY_TIMEOUT_MS + 4000;
    const [first] = producers;
    let recoveredMs: number | undefined;
    while (recoveredMs === undefined && Date.now() < deadline) {
      if ((await first.append()).outcome === "resolved") recoveredMs = Date.now() - started;
    }
    // Then it keeps working, for all eight streams at once.
    const after: Call[] = [];
    if (recoveredMs !== undefined) for (let round = 0; round < 2; round++) after.push(...(await Promise.all(producers.map((p) => p.append()))));
    summarize(
      `${backend.name} recovery`,
      producers,
      `; ${opened} connections blackholed, recovered after ${recoveredMs ?? "never"} ms, afterwards ` +
        `${after.filter((c) => c.outcome === "resolved").length}/${after.length} resolved`,
    );
    expect.soft(recoveredMs, "no append succeeded before the deadline").toBeDefined();
    expect.soft(after.map((c) => c.outcome)).toEqual(after.map(() => "resolved"));
    await sleep(LATE_COMMIT_WAIT_MS);
    expectNoViolations(`${backend.name} recovery`, await verify());
  }, 40_000);
});
