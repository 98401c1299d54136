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
  // An app keeps its store, and with it the Rust pool, for as long as it runs; stores made
  // from one connection string share one pool. This one keeps the pool (and its warm
  // connections) across the benchmark's rounds, as pg.Pool is kept for the other modes.
  const keeper = new PostgresStreamStore(url);
  const jsPool = () => (pool ??= new pg.Pool({ connectionString: url, max: 10 }));
  const modes = [
    {
      key: "native",
      stopSignals: true,
      streams: (t, o = {}) => new PostgresStreamStore(url, { ...t.stream, ...o }),
      conversations: (t) => new PostgresConversationStore(url, t.conversation),
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
      streams: (t, o = {}) => new BaselineStreamStore(jsPool(), { ...t.stream, ...o }),
      conversations: (t) => new BaselineConversationStore(jsPool(), t.conversation),
    },
  ].map((m) => ({ ...m, name: modeNames[m.key] }));
  return {
    modes,
    end: async () => {
      await keeper.close();
      await pool?.end();
    },
  };
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes. */
export const wallMs = () => performance.timeOrigin + performance.now();
