// Appends combined into one statement each land at the seq they ask for, or not at all:
// the Rust pool's lane (src/backend/pool/combine/), and a pg client's appends that found
// its connections all taken by the store's appends (lib/appends.cjs `#combine`). The
// store's own appends never put two calls of one stream in one batch (lib/appends.cjs
// sends a stream's appends one at a time), so the first test drives the native store
// directly: calls of one stream whose seqs do not follow one another must not be stored
// at seqs they did not ask for.
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { createRequire } from "node:module";
import { DATABASE_URL, adminPool, collect, freshSchema, sleep, uid, urlWithApp } from "./helpers.js";

// The store's native half (internal): loaded as index.js loads it, so it is the same module.
const require = createRequire(import.meta.url);
const { native } = require("../lib/store.cjs") as { native(store: object): unknown };
const { translate } = require("../lib/errors.cjs") as { translate(err: unknown): { code?: string } };
const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

type Native = { append(id: string, chunk: string, at?: number): Promise<number> };

it("a batch whose calls of one stream ask for seqs out of step stores none of them there", async () => {
  const store = new PostgresStreamStore(urlWithApp(uid("combined")), tables.stream);
  const raw = native(store) as Native;
  const id = uid("out-of-step");
  await store.create(id);
  try {
    // The first call takes the lane; the calls made with it queue, and go out together.
    const settle = (p: Promise<number>) => p.then((seq) => ({ seq }), (err) => ({ code: translate(err).code }));
    const first = settle(raw.append(uid("nowhere"), "x", 1));
    const asked = [1, 3, 2]; // out of step: the second asks for 3 before 2 is stored
    const calls = asked.map((at, i) => settle(raw.append(id, `c${i}`, at)));
    await first;
    const outcomes = await Promise.all(calls);
    const { rows } = await admin.query(`SELECT seq, data FROM ${tables.stream.chunksTable} WHERE id = $1 ORDER BY seq`, [id]);
    // Whatever was stored is at the seq its call asked for.
    for (const { seq, data } of rows as { seq: number; data: string }[]) {
      const i = Number(data.slice(1));
      expect(seq).toBe(asked[i]);
      expect(outcomes[i]).toEqual({ seq });
    }
    // The call that asked for 3 while the stream had no chunk 2 is not stored anywhere.
    expect(rows.map((r: { data: string }) => r.data)).not.toContain("c1");
    expect(outcomes[1]).toMatchObject({ code: "STREAM_NOT_ACTIVE" });
  } finally {
    await store.close();
  }
});

describe("a pg.Pool's appends beyond its connections go out together", () => {
  /** Counts the statements a pool's clients run: single appends, combined ones. */
  function counted(pool: pg.Pool) {
    const seen = { single: 0, combined: 0, together: 0 };
    pool.on("connect", (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as { query: unknown }).query = (config: { text?: string }, values?: unknown[], ...rest: unknown[]) => {
        const text = typeof config === "string" ? config : (config?.text ?? "");
        if (text.includes("unnest($1::text[]")) {
          seen.combined++;
          seen.together += (values as unknown[][])[0].length;
        } else if (text.includes(`INSERT INTO ${tables.stream.chunksTable}`)) seen.single++;
        return query(config, values, ...rest);
      };
    });
    return seen;
  }

  let retried = 0;

  /** `streams` producers at once, `n` awaited appends each (chunks with quotes, commas, braces); what each got back. */
  async function produce(store: PostgresStreamStore, ids: string[], n: number, retry = false) {
    retried = 0;
    return Promise.all(
      ids.map(async (id) => {
        const seqs: number[] = [];
        for (let i = 1; i <= n; i++) {
          const chunk = `${id} "c${i}", {x} \\ é`;
          for (;;) {
            try {
              seqs.push(await store.append(id, chunk));
              break;
            } catch (err) {
              // Appending the same chunk again after a retryable failure stores it once.
              if (!retry || !(err as { retryable?: boolean }).retryable) throw err;
              retried++;
              await sleep(20);
            }
          }
        }
        return seqs;
      }),
    );
  }

  const chunksOf = (id: string, n: number) =>
    Array.from({ length: n }, (_, i) => ({ seq: i + 1, data: `${id} "c${i + 1}", {x} \\ é` }));

  it("20 producers on a pool of 2: every chunk once, at its seq, in order, and far fewer statements than appends", async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 2 });
    const seen = counted(pool);
    const store = new PostgresStreamStore(pool, { ...tables.stream, pollIntervalMs: 60_000 });
    try {
      const ids = Array.from({ length: 20 }, () => uid("together"));
      for (const id of ids) await store.create(id);
      const readers = ids.map((id) => collect(store.readFrom(id, 0)));
      const acked = await produce(store, ids, 30);
      for (const id of ids) await store.complete(id);
      for (const seqs of acked) expect(seqs).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      const got = await Promise.all(readers);
      ids.forEach((id, s) => expect(got[s]).toEqual(chunksOf(id, 30)));
      const { rows } = await admin.query(
        `SELECT id, seq, data FROM ${tables.stream.chunksTable} WHERE id = ANY($1) ORDER BY id, seq`,
        [ids],
      );
      expect(rows).toEqual([...ids].sort().flatMap((id) => chunksOf(id, 30).map((c) => ({ id, ...c }))));
      // Most appends went out with others: each combined statement carried several.
      expect(seen.together).toBeGreaterThan(300);
      expect(seen.combined + seen.single).toBeLessThan(300);
    } finally {
      await store.close();
      await pool.end();
    }
  });

  it("more appends waiting than one statement carries (500) all go, in several statements", async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    const seen = counted(pool);
    const store = new PostgresStreamStore(pool, { ...tables.stream, queryTimeoutMs: 20_000 });
    try {
      const ids = Array.from({ length: 1_200 }, () => uid("many"));
      await admin.query(
        `INSERT INTO ${tables.stream.statusTable} (id, state, total_chunks, expires_at) SELECT unnest($1::text[]), 'active', 0, $2`,
        [ids, Date.now() + 600_000],
      );
      for (const id of ids.slice(0, 2)) expect(await store.append(id, "a")).toBe(1); // known, then lone
      // Each of the others first learns where its stream stands (one lookup each), then
      // its append waits behind the one in flight.
      const seqs = await Promise.all(ids.slice(2).map((id) => store.append(id, "a")));
      expect(seqs.every((seq) => seq === 1)).toBe(true);
      expect(seen.combined).toBeGreaterThanOrEqual(3); // 1,198 waiting: at most 500 a statement
      const { rows } = await admin.query(
        `SELECT count(*)::int AS n FROM ${tables.stream.chunksTable} WHERE id = ANY($1) AND seq = 1`,
        [ids],
      );
      expect(rows[0].n).toBe(1_200);
    } finally {
      await store.close();
      await pool.end();
    }
  });

  it("an append whose stream is locked elsewhere goes alone and waits; the others go on", async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    const seen = counted(pool);
    const store = new PostgresStreamStore(pool, tables.stream);
    const locker = await admin.connect();
    try {
      const ids = Array.from({ length: 6 }, () => uid("locked"));
      for (const id of ids) await store.create(id);
      await locker.query("BEGIN");
      await locker.query(`SELECT 1 FROM ${tables.stream.statusTable} WHERE id = $1 FOR UPDATE`, [ids[5]]);
      // One append in flight takes the pool's one connection; the other five wait for it
      // and go out together, where the locked stream's row is skipped.
      const first = store.append(ids[0], "a");
      const rest = ids.slice(1).map((id) => store.append(id, "a"));
      expect(await first).toBe(1);
      expect(await Promise.all(rest.slice(0, 4))).toEqual([1, 1, 1, 1]);
      expect(seen.combined).toBe(1);
      const locked = rest[4];
      let settled = false;
      void locked.then(() => (settled = true));
      await sleep(100);
      expect(settled).toBe(false); // waiting for the lock, alone
      await locker.query("COMMIT");
      expect(await locked).toBe(1);
    } finally {
      await locker.query("ROLLBACK").catch(() => {});
      locker.release();
      await store.close();
      await pool.end();
    }
  });

  it("connections killed under combined appends: every acknowledged chunk stored once, in order", async () => {
    const app = uid("killed");
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 3, application_name: app });
    pool.on("error", () => {});
    const seen = counted(pool);
    const store = new PostgresStreamStore(pool, { ...tables.stream, queryTimeoutMs: 5_000 });
    try {
      const ids = Array.from({ length: 12 }, () => uid("killed"));
      for (const id of ids) await store.create(id);
      let killing = true;
      let killed = 0;
      const killer = (async () => {
        for (let k = 0; killing && k < 6; k++) {
          await sleep(30);
          // In the select list: evaluated only for the rows the WHERE keeps.
          const { rows } = await admin.query(
            "SELECT pg_terminate_backend(pid) AS gone FROM pg_stat_activity WHERE application_name = $1",
            [app],
          );
          killed += rows.filter((r: { gone: boolean }) => r.gone).length;
        }
      })();
      const acked = await produce(store, ids, 80, true);
      killing = false;
      await killer;
      expect(seen.combined).toBeGreaterThan(0);
      expect(killed).toBeGreaterThan(0);
      // The store settled every append the kills broke itself: none rejected.
      expect(retried).toBe(0);
      for (const seqs of acked) expect(seqs).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
      const { rows } = await admin.query(
        `SELECT id, seq, data FROM ${tables.stream.chunksTable} WHERE id = ANY($1) ORDER BY id, seq`,
        [ids],
      );
      expect(rows).toEqual([...ids].sort().flatMap((id) => chunksOf(id, 80).map((c) => ({ id, ...c }))));
    } finally {
      await store.close();
      await pool.end();
    }
  });
});
