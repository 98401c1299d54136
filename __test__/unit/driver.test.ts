// lib/driver.cjs without a database: how a JS client's results are handed to the native
// side (src/backend/js.rs) — rows by column, failures and malformed results as outcomes —
// and the postgres.js / Neon wrappers.
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const { adapt, outcomeOf, wrapPostgresJs, wrapNeon } = require("../../lib/driver.cjs");

describe("outcomeOf", () => {
  const spec = "seq:i,text:t";

  it("sends every column: integers as a Float64Array, texts joined with their lengths", () => {
    const rows = [
      { seq: 1, text: "ab" },
      { seq: "2", text: null },
      { seq: undefined, text: "" },
      { seq: null, text: "x\u{1F600}" },
    ];
    const { rows: n, columns, notAnObject } = outcomeOf({ rows }, spec, false);
    expect(n).toBe(4);
    expect(notAnObject).toBeUndefined();
    expect(columns).toHaveLength(2);
    expect(columns[0].ints).toBeInstanceOf(Float64Array);
    expect(Array.from(columns[0].ints)).toEqual([1, 2, NaN, NaN]);
    expect(columns[1].text).toBe("abx\u{1F600}");
    expect(columns[1].lengths).toBeInstanceOf(Int32Array);
    expect(Array.from(columns[1].lengths)).toEqual([2, -1, 0, 3]);
  });

  it("reads rows by index when they came as arrays (pg's rowMode 'array')", () => {
    const { columns } = outcomeOf({ rows: [[5, "hi"], [6, "there"]] }, spec, true);
    expect(Array.from(columns[0].ints)).toEqual([5, 6]);
    expect(columns[1]).toEqual({ text: "hithere", lengths: new Int32Array([2, 5]) });
  });

  it("sends a column with a value it cannot encode exactly as the values themselves", () => {
    const values = [1.5, "x", " 7", "1e3", 12n, 2 ** 60, true];
    for (const v of values) {
      const { columns } = outcomeOf({ rows: [{ seq: 1, text: "a" }, { seq: v, text: "b" }] }, spec, false);
      expect(columns[0]).toEqual({ values: [1, v] });
      expect(columns[1]).toEqual({ text: "ab", lengths: new Int32Array([1, 1]) });
    }
    const { columns } = outcomeOf({ rows: [{ seq: 1, text: 5 }] }, spec, false);
    expect(columns[1]).toEqual({ values: [5] });
  });

  it("stops at the first row that is not an object, naming what it is", () => {
    for (const [row, got] of [
      ["x", "a string"],
      [null, "null"],
      [undefined, "undefined"],
      [3, "a number"],
      [1n, "a BigInt"],
      [() => {}, "a function"],
    ] as const) {
      const outcome = outcomeOf({ rows: [{ seq: 1, text: "a" }, row, { seq: 3, text: "c" }] }, spec, false);
      expect(outcome.rows).toBe(1);
      expect(outcome.notAnObject).toEqual({ row: 1, got });
      expect(Array.from(outcome.columns[0].ints)).toEqual([1]);
    }
  });

  it("says what came back when it is not a result with rows", () => {
    expect(outcomeOf({ rowCount: 1 }, spec, false)).toEqual({ malformed: "an object without a rows array" });
    expect(outcomeOf([], spec, false)).toEqual({ malformed: "an array" });
    expect(outcomeOf(undefined, spec, false)).toEqual({ malformed: "undefined" });
  });

  it("handles no rows and no columns", () => {
    expect(outcomeOf({ rows: [] }, spec, false)).toEqual({
      rows: 0,
      columns: [{ ints: new Float64Array(0) }, { text: "", lengths: new Int32Array(0) }],
    });
    expect(outcomeOf({ rows: [{}, {}] }, "", false)).toEqual({ rows: 2, columns: [] });
  });
});

describe("adapt (a plain { query } client)", () => {
  const outcomes: unknown[][] = [];
  const settle = (...args: unknown[]) => {
    outcomes.push(args);
    return args;
  };

  it("settles the rows by column (and as they came for the hub's own statements)", async () => {
    const rows = [{ seq: 1, text: "a" }];
    const query = adapt({ query: async () => ({ rows }) }, settle, 1_000);
    expect(await query("SELECT 1", [], 7, null, null)).toEqual([7, rows]);
    const [ticket, outcome] = await query("SELECT 1", [], 8, "seq:i,text:t", null);
    expect(ticket).toBe(8);
    expect(outcome).toEqual({ rows: 1, columns: [{ ints: new Float64Array([1]) }, { text: "a", lengths: new Int32Array([1]) }] });
  });

  it("settles a failure with its message, code and phase", async () => {
    const err = Object.assign(new Error("duplicate key"), { code: "23505" });
    const query = adapt({ query: async () => Promise.reject(err) }, settle, 1_000);
    expect(await query("INSERT", [], 1, null, null)).toEqual([1, { failed: { message: "duplicate key", code: "23505", phase: "query" } }]);
    const thrown = adapt({ query: async () => Promise.reject("text") }, settle, 1_000);
    expect(await thrown("INSERT", [], 2, null, null)).toEqual([2, { failed: { message: "text", code: undefined, phase: "query" } }]);
  });

  it("settles a result without rows as malformed", async () => {
    const query = adapt({ query: async () => ({ rowCount: 1 }) }, settle, 1_000);
    expect(await query("SELECT 1", [], 1, "n:i", null)).toEqual([1, { malformed: "an object without a rows array" }]);
    const nothing = adapt({ query: async () => undefined }, settle, 1_000);
    expect(await nothing("SELECT 1", [], 2, "n:i", null)).toEqual([2, { malformed: "undefined" }]);
  });

  it("settles QUERY_TIMEOUT when the client does not answer within the time", async () => {
    const query = adapt({ query: () => new Promise(() => {}) }, settle, 30);
    const [, outcome] = await query("SELECT pg_sleep(1)", [], 1, null, null);
    expect(outcome).toMatchObject({ failed: { code: "QUERY_TIMEOUT", phase: "query" } });
    expect(outcome.failed.message).toMatch(/^the call did not finish within queryTimeoutMs \(30 ms\)/);
  });

  it("rejects with what settle throws", async () => {
    const query = adapt({ query: async () => ({ rows: [] }) }, () => {
      throw new Error("from settle");
    }, 1_000);
    await expect(query("SELECT 1", [], 1, null, null)).rejects.toThrow("from settle");
  });
});

describe("wrappers", () => {
  it("wrapPostgresJs calls sql.unsafe with prepare unless the instance turned it off", async () => {
    const calls: unknown[][] = [];
    const sql = { unsafe: async (...args: unknown[]) => (calls.push(args), [{ a: 1 }]), options: {} };
    expect(await wrapPostgresJs(sql).query("SELECT $1", [1])).toEqual({ rows: [{ a: 1 }] });
    await wrapPostgresJs({ ...sql, options: { prepare: false } }).query("SELECT 2");
    expect(calls).toEqual([
      ["SELECT $1", [1], { prepare: true }],
      ["SELECT 2", [], { prepare: false }],
    ]);
  });

  it("wrapNeon uses sql.query where there is one, else calls sql, and reads rows either way", async () => {
    const fn = async (text: string) => [{ text }];
    expect(await wrapNeon(fn).query("SELECT 1")).toEqual({ rows: [{ text: "SELECT 1" }] });
    const withQuery = { query: async (text: string, params: unknown[]) => ({ rows: [{ text, params }] }) };
    expect(await wrapNeon(withQuery).query("SELECT 2", [3])).toEqual({ rows: [{ text: "SELECT 2", params: [3] }] });
  });
});
