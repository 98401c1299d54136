// A seeded concurrency model test (issue 22, item 6). Each run lets actors loose
// (fixtures/concurrency-actors.ts) on three stores over the same tables, two sharing a
// client and one on a client of its own: per stream slot, a producer that creates the
// stream, appends (awaited, or several at once through random stores), starts readers
// (from a random seq, some breaking early), finishes it (stop / complete / fail), appends
// again after that, and re-creates the id once cleanup has removed it; a janitor calling
// cleanup() (ttlMs 0, so it really removes streams); another session holding a status row
// FOR UPDATE for a random short time (up to past one store's queryTimeoutMs), with once a
// run a quiet spell before it (the Rust pool shrinks, then must grow while a call waits on
// the lock); and slow statements (a `pg_sleep` FOR UPDATE in another session; on a pg.Pool
// also a Client whose replies for one stream come late). A trigger logs every chunk ever
// committed, so what cleanup removed is still checked. After each run:
//   - exactly once: a resolved append is stored once, at the seq it returned; one rejected
//     with any code but APPEND_OUTCOME_UNKNOWN is not stored; every stored chunk is a call's;
//   - gapless: each generation of a stream holds seqs 1..n, once each;
//   - call order: a store's appends to one stream, in the order they were issued, took
//     increasing seqs;
//   - readers read exactly the stored chunks after their seq, in order (a prefix when they
//     broke early, or when cleanup may have removed the stream first), and end within
//     READER_END_MS of the stream's finish;
//   - no call waits on another stream: calls (but cleanup) on a stream neither locked nor
//     slowed while they ran take under UNRELATED_MS.
// Each actor draws from a PRNG of its own seeded from MODEL_SEED (printed on failure;
// `MODEL_SEED=<n>` replays the same choices; timings still vary).
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore, type PostgresClient } from "../index.js";
import {
  READER_END_MS,
  SHORT_TIMEOUT_MS,
  SLOTS,
  SlowClient,
  counters,
  janitor,
  locker,
  now,
  producer,
  rng,
  slowpoke,
  type AppendCall,
  type Run,
} from "./fixtures/concurrency-actors.js";
import { DATABASE_URL, adminPool, freshSchema, uid, urlWithApp } from "./helpers.js";

const SEED = Number(process.env.MODEL_SEED ?? Math.floor(Math.random() * 2 ** 31));
const RUNS = 3;
/** A call on a stream nobody locked or slowed takes less than this. */
const UNRELATED_MS = 1_000;

const admin = adminPool();
const lockers = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
let tables: Awaited<ReturnType<typeof freshSchema>>;
let log: string;

beforeAll(async () => {
  tables = await freshSchema(admin);
  log = `${tables.schema}.chunk_log`;
  // Every chunk ever committed, with its generation's row gone or not.
  await admin.query(`
    CREATE TABLE ${log} (id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL);
    CREATE FUNCTION ${tables.schema}.log_chunk() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN INSERT INTO ${log} VALUES (NEW.id, NEW.seq, NEW.data); RETURN NULL; END $$;
    CREATE TRIGGER log_chunk AFTER INSERT ON ${tables.stream.chunksTable}
      FOR EACH ROW EXECUTE FUNCTION ${tables.schema}.log_chunk();`);
});
afterAll(async () => {
  await tables.drop();
  await lockers.end();
  await admin.end();
});

// ------------------------------------------------------------------------ the checks

/**
 * Readers cost statements in proportion to the work: a reader waiting on a stream another
 * pool of the process wrote once read pages in a loop (thousands of statements a second)
 * until the stream changed again (src/tail.rs: its own page counted as news).
 */

async function check(run: Run, prefix: string, statements: number) {
  const bad = run.problems;
  const { rows } = await admin.query<{ id: string; seq: number; data: string }>(
    `SELECT id, seq, data FROM ${log} WHERE id LIKE $1 ORDER BY id, seq`,
    [`${prefix}-%`],
  );
  const byData = new Map(run.appends.map((a) => [a.data, a]));
  const logged = new Map<string, { id: string; seq: number }[]>();
  const perGen = new Map<string, number[]>();
  for (const row of rows) {
    const a = byData.get(row.data);
    if (a === undefined || a.id !== row.id) {
      bad.push(`stored ${JSON.stringify(row)}: no append made it`);
      continue;
    }
    logged.set(row.data, [...(logged.get(row.data) ?? []), row]);
    perGen.set(a.gen, [...(perGen.get(a.gen) ?? []), row.seq]);
  }
  // Exactly once.
  for (const a of run.appends) {
    const at = logged.get(a.data) ?? [];
    if (a.ended === undefined) bad.push(`append ${a.data} never settled`);
    else if (a.seq !== undefined && (at.length !== 1 || at[0].seq !== a.seq)) {
      bad.push(`append ${a.data} resolved ${a.seq}, stored at ${JSON.stringify(at.map((x) => x.seq))}`);
    } else if (a.seq === undefined && a.code !== "APPEND_OUTCOME_UNKNOWN" && at.length > 0) {
      bad.push(`append ${a.data} rejected ${a.code}, stored at ${at.map((x) => x.seq)}`);
    } else if (at.length > 1) bad.push(`append ${a.data} stored ${at.length} times`);
  }
  // Gapless, unique, per generation.
  for (const [gen, seqs] of perGen) {
    const sorted = [...seqs].sort((x, y) => x - y);
    if (sorted.some((seq, i) => seq !== i + 1)) bad.push(`generation ${gen}: seqs ${sorted}`);
  }
  // Call order: per store, stream generation, in issue order.
  const lastSeq = new Map<string, AppendCall>();
  for (const a of run.appends) {
    if (a.seq === undefined) continue;
    const key = `${a.store}/${a.gen}`;
    const before = lastSeq.get(key);
    if (before !== undefined && before.seq! >= a.seq)
      bad.push(`store ${a.store}: ${before.data} got ${before.seq}, later ${a.data} got ${a.seq}`);
    lastSeq.set(key, a);
  }
  // Readers.
  for (const gen of run.gens) {
    const stored = rows.filter((row) => byData.get(row.data)?.gen === gen.key).sort((x, y) => x.seq - y.seq);
    // Cleanup may remove the stream only once a cleanup began after its finish did.
    const removable = Math.min(
      ...run.cleanups.filter(([from]) => from >= (gen.finishStarted ?? Infinity)).map(([from]) => from),
    );
    for (const r of gen.readers) {
      const what = `reader of ${gen.key} after ${r.after}${r.breakAfter ? ` (breaks after ${r.breakAfter})` : ""}`;
      const want = stored.filter((row) => row.seq > r.after).map(({ seq, data }) => ({ seq, data }));
      if (r.error) bad.push(`${what}: ${r.error}`);
      if (r.ended === undefined) {
        bad.push(`${what}: never ended (read ${r.read.length} of ${want.length})`);
        continue;
      }
      if (JSON.stringify(r.read) !== JSON.stringify(want.slice(0, r.read.length))) {
        bad.push(`${what}: read ${JSON.stringify(r.read)}, stored ${JSON.stringify(want)}`);
      }
      const full = Math.min(want.length, r.breakAfter ?? Infinity);
      if (r.read.length < full && r.ended < removable) bad.push(`${what}: read ${r.read.length} of ${full}`);
      if (r.ended < removable) run.stats.exactReaders++;
      else run.stats.prefixReaders++;
      const endedAfter = r.ended - Math.max(gen.finishEnded ?? Infinity, r.started);
      run.stats.latestReaderEnd = Math.max(run.stats.latestReaderEnd, Math.round(endedAfter));
      if (endedAfter > READER_END_MS) bad.push(`${what}: ended ${Math.round(endedAfter)} ms after its stream`);
    }
  }
  // Nothing reads in a loop: a generous budget of statements per call and chunk read.
  const read = run.gens.reduce((n, g) => n + g.readers.reduce((m, r) => m + 1 + r.read.length, 0), 0);
  run.stats.statements = statements;
  if (statements > 10 * (run.calls.length + read) + 1_000) {
    bad.push(`${statements} statements for ${run.calls.length} calls and ${read} reads and chunks read`);
  }
  // No call waits on another stream.
  for (const c of run.calls) {
    if (c.ended === undefined) continue;
    const ms = c.ended - c.started;
    const held = (run.touched.get(c.id) ?? []).some(([from, to]) => from <= c.ended! && to >= c.started);
    if (held) run.stats.touched++;
    else {
      run.stats.untouched++;
      run.stats.slowestUntouched = Math.max(run.stats.slowestUntouched, Math.round(ms));
    }
    if (!held && ms > UNRELATED_MS)
      bad.push(`${c.op}(${c.id}) via store ${c.store}: ${Math.round(ms)} ms, its stream untouched`);
  }
}

// --------------------------------------------------------------------------- the runs

const backends: {
  name: string;
  native: boolean;
  client(): { client: string | PostgresClient; close(): Promise<void> };
}[] = [
  {
    name: "connection string (Rust pool)",
    native: true,
    client: () => ({ client: urlWithApp(uid("cm")), close: async () => {} }),
  },
  {
    name: "pg.Pool",
    native: false,
    client: () => {
      const pool = new pg.Pool({
        connectionString: DATABASE_URL,
        max: 10,
        Client: SlowClient as unknown as typeof pg.Client,
      });
      pool.on("error", () => {});
      return { client: pool, close: () => pool.end() };
    },
  },
];

describe.each(backends)("$name: random interleavings", ({ native, client: make }) => {
  it(`keep every invariant (MODEL_SEED=${SEED})`, async () => {
    for (let i = 0; i < RUNS; i++) {
      const seed = (SEED + i * 7919 + (native ? 0 : 104_729)) >>> 0;
      const prefix = `cm${i}${native ? "n" : "j"}-${uid("")}`;
      const [one, two] = [make(), make()];
      // Rust pools close idle connections soon: they shrink in a quiet spell and must grow again.
      const options = { ...tables.stream, ttlMs: 0, ...(native ? { idleTimeoutMs: 600 } : {}) };
      const run: Run = {
        stores: [
          new PostgresStreamStore(one.client, options),
          new PostgresStreamStore(two.client, { ...options, queryTimeoutMs: SHORT_TIMEOUT_MS }),
          new PostgresStreamStore(one.client, options),
        ],
        lockers,
        statusTable: tables.stream.statusTable,
        active: new Set(),
        calls: [],
        appends: [],
        gens: [],
        touched: new Map(),
        cleanups: [],
        stats: { untouched: 0, touched: 0, slowestUntouched: 0, exactReaders: 0, prefixReaders: 0, latestReaderEnd: 0 },
        until: now() + 3_000,
        over: false,
        problems: [],
      };
      const started = now();
      counters.pgStatements = 0;
      try {
        const side = [
          janitor(run, rng(seed + 1)),
          locker(run, rng(seed + 2), prefix),
          slowpoke(run, rng(seed + 3), prefix, native),
        ];
        const slots = Array.from({ length: SLOTS }, (_, s) => producer(run, rng(seed + 10 + s), s, prefix));
        await Promise.all(slots).finally(() => (run.over = true));
        await Promise.all(side);
        const sent = (k: number) => run.stores[k].stats().statementsSent ?? 0;
        await check(run, prefix, native ? sent(0) + sent(1) : counters.pgStatements);
      } finally {
        for (const store of run.stores) await store.close();
        await one.close();
        await two.close();
      }
      const codes: Record<string, number> = {};
      for (const c of run.calls) codes[c.code ?? "ok"] = (codes[c.code ?? "ok"] ?? 0) + 1;
      console.log(
        `seed ${seed} (MODEL_SEED=${SEED} run ${i}): ${Math.round(now() - started)} ms, ${run.gens.length} generations, ` +
          `${run.appends.length} appends, ${run.gens.reduce((n, g) => n + g.readers.length, 0)} readers, ` +
          `${run.cleanups.length} cleanups, ${[...run.touched.values()].flat().length} locks/slow spans; ` +
          `calls: ${JSON.stringify(codes)}; ${JSON.stringify(run.stats)}`,
      );
      expect(run.problems, `replay with MODEL_SEED=${SEED} (run ${i}, seed ${seed})`).toEqual([]);
    }
  }, 60_000);
});
