// lib/driver.cjs without a database: how a JS client's results are handed to the native
// side (src/backend/js.rs) — pages by column, failures and malformed results as outcomes —
// and the postgres.js / Neon wrappers.
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const { adapt, columnar, asObjects, wrapPostgresJs, wrapNeon } = require("../../lib/driver.cjs");

describe("columnar", () => {
  const spec = "seq:i,text:t";

  it("gives a Float64Array per integer column and text + lengths per text column", () => {
    const out = columnar(
      [
        { seq: 1, text: "ab" },
        { seq: "2", text: null },
        { seq: 3n, text: "" },
        { seq: null, text: "xyz" },
      ],
      spec,
      false,
    );
    expect(out).toHaveLength(3);
    expect(out[0]).toBeInstanceOf(Float64Array);
    expect(Array.from(out[0])).toEqual([1, 2, 3, NaN]);
    expect(out[1]).toBe("abxyz");
    expect(out[2]).toBeInstanceOf(Int32Array);
    expect(Array.from(out[2])).toEqual([2, -1, 0, 3]);
  });

  it("reads rows by index when they came as arrays (pg's rowMode 'array')", () => {
    const out = columnar([[5, "hi"], [6, "there"]], spec, true);
    expect(Array.from(out[0])).toEqual([5, 6]);
    expect(out[1]).toBe("hithere");
    expect(Array.from(out[2])).toEqual([2, 5]);
  });

  it("gives undefined for a value of the wrong type (the rows are then read one by one)", () => {
    expect(columnar([{ seq: 1.5, text: "a" }], spec, false)).toBeUndefined();
    expect(columnar([{ seq: "x", text: "a" }], spec, false)).toBeUndefined();
    expect(columnar([{ seq: " ", text: "a" }], spec, false)).toBeUndefined();
    expect(columnar([{ seq: 1, text: 5 }], spec, false)).toBeUndefined();
  });

  it("handles no rows", () => {
    const out = columnar([], spec, false);
    expect(Array.from(out[0])).toEqual([]);
    expect(out[1]).toBe("");
  });
});

describe("asObjects", () => {
  it("names an array row's values by the spec's columns", () => {
    expect(asObjects([[1, "a"], [2, null]], "seq:i,text:t")).toEqual([
      { seq: 1, text: "a" },
      { seq: 2, text: null },
    ]);
  });
});

describe("adapt (a plain { query } client)", () => {
  const outcomes: unknown[][] = [];
  const settle = (...args: unknown[]) => {
    outcomes.push(args);
    return args;
  };

  it("settles the rows, and a page by column when asked", async () => {
    const rows = [{ seq: 1, text: "a" }];
    const query = adapt({ query: async () => ({ rows }) }, settle, 1_000);
    expect(await query("SELECT 1", [], 7, null, null)).toEqual([7, rows]);
    const [ticket, sent, columns] = await query("SELECT 1", [], 8, "seq:i,text:t", null);
    expect(ticket).toBe(8);
    expect(sent).toBe(rows);
    expect(Array.from(columns[0])).toEqual([1]);
    expect(columns[1]).toBe("a");
  });

  it("settles a failure with its message, code and phase", async () => {
    const err = Object.assign(new Error("duplicate key"), { code: "23505" });
    const query = adapt({ query: async () => Promise.reject(err) }, settle, 1_000);
    expect(await query("INSERT", [], 1, null, null)).toEqual([1, { failed: { message: "duplicate key", code: "23505", phase: "query" } }]);
    const thrown = adapt({ query: async () => Promise.reject("text") }, settle, 1_000);
    expect(await thrown("INSERT", [], 2, null, null)).toEqual([2, { failed: { message: "text", code: null, phase: "query" } }]);
  });

  it("settles a result without rows as malformed", async () => {
    const query = adapt({ query: async () => ({ rowCount: 1 }) }, settle, 1_000);
    expect(await query("SELECT 1", [], 1, null, null)).toEqual([1, { malformed: "an object without a rows array" }]);
    const nothing = adapt({ query: async () => undefined }, settle, 1_000);
    expect(await nothing("SELECT 1", [], 2, null, null)).toEqual([2, { malformed: "undefined" }]);
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
