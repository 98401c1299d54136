// The three ways the benchmark runs a store, shared by the benchmark and the child
// processes it starts: this package with a connection string (Rust pool), this package
// over a pg.Pool (JS client), and the original's algorithm over a pg.Pool (baseline.mjs).
import pg from "pg";
import { PostgresConversationStore, PostgresStreamStore } from "../index.js";
import { BaselineConversationStore, BaselineStreamStore } from "./baseline.mjs";

export const modeNames = {
  native: "rust pool (connection string)",
  js: "JS client (pg.Pool)",
  baseline: "baseline: original algorithm over pg.Pool",
};

/** The modes over one database; `end()` closes the pg pool they share. */
export function makeModes(url) {
  let pool;
  let relaxedPool;
  // An app keeps its store, and with it the Rust pool, for as long as it runs; stores made
  // from one connection string share one pool. This one keeps the pool (and its warm
  // connections) across the benchmark's rounds, as pg.Pool is kept for the other modes.
  // It is made on the first use of the native mode only: a process that runs another mode
  // (a child process of the benchmark) then has no Rust pool, no LISTEN connection and no
  // connection of its own, as an app with only a pg.Pool has none.
  let keeper;
  const keep = () => (keeper ??= new PostgresStreamStore(url));
  const jsPool = () => (pool ??= new pg.Pool({ connectionString: url, max: 10 }));
  // The original has no relaxed durability of its own: given `synchronousCommit: false`,
  // the baseline gets it the way an app would, for its whole pool (session setting).
  const relaxedJsPool = () =>
    (relaxedPool ??= new pg.Pool({ connectionString: url, max: 10, options: "-c synchronous_commit=off" }));
  const modes = [
    {
      key: "native",
      stopSignals: true,
      streams: (t, o = {}) => (keep(), new PostgresStreamStore(url, { ...t.stream, ...o })),
      conversations: (t) => (keep(), new PostgresConversationStore(url, t.conversation)),
    },
    {
      key: "js",
      // Without LISTEN a JS client's stop signal looks every pollIntervalMs; in the
      // benchmark's process the Rust pool's listener would wake it, so it is not measured.
      streams: (t, o = {}) => new PostgresStreamStore(jsPool(), { ...t.stream, ...o }),
      conversations: (t) => new PostgresConversationStore(jsPool(), t.conversation),
    },
    {
      key: "baseline",
      streams: (
        t,
        /** @type {{ synchronousCommit?: boolean, [option: string]: unknown }} */ { synchronousCommit, ...o } = {},
      ) => new BaselineStreamStore(synchronousCommit === false ? relaxedJsPool() : jsPool(), { ...t.stream, ...o }),
      conversations: (t) => new BaselineConversationStore(jsPool(), t.conversation),
    },
  ].map((m) => ({ ...m, name: modeNames[m.key] }));
  return {
    modes,
    end: async () => {
      await keeper?.close();
      await pool?.end();
      await relaxedPool?.end();
    },
  };
}

/**
 * Milliseconds with sub-millisecond precision, comparable across the processes of one
 * machine: the monotonic clock since boot, which all processes share. (Not
 * `performance.timeOrigin + performance.now()`: each process takes its time origin once
 * at start, and two processes' origins can differ by milliseconds, which showed here as
 * negative lags.)
 */
export const wallMs = () => Number(process.hrtime.bigint()) / 1e6;
