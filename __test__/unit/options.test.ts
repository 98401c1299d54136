// lib/options.cjs: the checks made before anything reaches the native side.
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const { describe: what, text, seqArgument, isMissing, nativeOptions, construct } = require("../../lib/options.cjs");
const { PostgresStoreError } = require("../../lib/errors.cjs");

describe("describe", () => {
  it.each([
    [null, "null"],
    [undefined, "undefined"],
    [[], "an array"],
    [{}, "an object"],
    ["x", "a string"],
    [1, "a number"],
    [1n, "a bigint"],
    [true, "a boolean"],
  ])("%s is %s", (value, name) => {
    expect(what(value)).toBe(name);
  });
});

describe("text", () => {
  it("passes a well-formed string through", () => {
    expect(text("stream id", "abc \u{1F600}")).toBe("abc \u{1F600}");
  });

  it("refuses a non-string with INVALID_ARGUMENT, naming the argument and what it got", () => {
    expect(() => text("stream id", 5)).toThrow(PostgresStoreError);
    expect(() => text("stream id", 5)).toThrow("stream id must be a string, got a number");
  });

  it("refuses a lone surrogate", () => {
    try {
      text("chunk", "a\uD800b");
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ code: "INVALID_ARGUMENT" });
      expect((err as Error).message).toMatch(/^chunk contains a lone UTF-16 surrogate/);
    }
  });
});

describe("seqArgument", () => {
  it("reads missing, numbers, bigints and numeric strings", () => {
    expect(seqArgument(undefined)).toBe(0);
    expect(seqArgument(null)).toBe(0);
    expect(seqArgument(7)).toBe(7);
    expect(seqArgument(7n)).toBe(7);
    expect(seqArgument(" 12 ")).toBe(12);
  });

  it("refuses NaN, blank strings and other types", () => {
    for (const bad of [NaN, "", " ", "x", {}, [1]]) {
      expect(() => seqArgument(bad)).toThrow(/^afterSeq must be a number, got /);
    }
  });
});

describe("nativeOptions", () => {
  it("makes nothing an empty object and hands an object through", () => {
    expect(nativeOptions(undefined)).toEqual({});
    expect(nativeOptions(null)).toEqual({});
    const options = { ttlMs: 5, chunksTable: "c", unknownOption: [1] };
    expect(nativeOptions(options)).toBe(options);
  });

  it("turns a listenUrl URL into its href, leaving the caller's object alone", () => {
    const options = { listenUrl: new URL("postgres://db/x") };
    expect(nativeOptions(options)).toEqual({ listenUrl: "postgres://db/x" });
    expect(options.listenUrl).toBeInstanceOf(URL);
  });

  it("refuses options of the wrong type with INVALID_OPTION", () => {
    expect(() => nativeOptions("x")).toThrow("options must be an object, got a string");
    for (const [name, value, type] of [
      ["ttlMs", "5", "number"],
      ["listen", 1, "boolean"],
      ["pooler", 1, "string"],
      ["synchronousCommit", "no", "boolean"],
    ] as const) {
      try {
        nativeOptions({ [name]: value });
        expect.unreachable();
      } catch (err) {
        expect(err).toMatchObject({ code: "INVALID_OPTION", message: `option "${name}" must be a ${type}, got ${what(value)}` });
      }
    }
  });
});

describe("isMissing and construct", () => {
  it("takes undefined, null and '' as no client", () => {
    expect([undefined, null, ""].map(isMissing)).toEqual([true, true, true]);
    expect(["postgres://", {}, 0].map(isMissing)).toEqual([false, false, false]);
  });

  it("construct translates a native error thrown while constructing", () => {
    const thrown = () =>
      construct(() => {
        throw new Error(`\u001f${JSON.stringify({ code: "INVALID_OPTION", message: "bad", retryable: false })}`);
      });
    expect(thrown).toThrow(PostgresStoreError);
    expect(construct(() => 3)).toBe(3);
  });
});
