// lib/errors.cjs without a database: native errors (U+001F + JSON, as src/error.rs makes
// them) become PostgresStoreErrors; anything else passes through untouched.
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const { PostgresStoreError, storeError, translate, outcomeUnknown, run } = require("../../lib/errors.cjs");

const native = (body: object) => new Error(`\u001f${JSON.stringify(body)}`);

describe("translate", () => {
  it("makes a native error a PostgresStoreError with code, message, sqlState and retryable", () => {
    const err = translate(native({ code: "DATABASE_ERROR", message: "value too long", sqlState: "22001", retryable: false }));
    expect(err).toBeInstanceOf(PostgresStoreError);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("PostgresStoreError");
    expect(err.code).toBe("DATABASE_ERROR");
    expect(err.message).toBe("value too long");
    expect(err.sqlState).toBe("22001");
    expect(err.retryable).toBe(false);
    expect(outcomeUnknown(err)).toBe(false);
  });

  it("a missing table (42P01): PostgreSQL's message, then the command that creates the tables", () => {
    const err = translate(native({ code: "DATABASE_ERROR", message: 'relation "t" does not exist', sqlState: "42P01", retryable: false }));
    expect(err.message).toMatch(/^relation "t" does not exist; the stores never create their tables: run `npx @aibind-rs\/postgres migrate --url "\$DATABASE_URL"`/);
    expect(err.sqlState).toBe("42P01");
  });

  it("keeps retryable, leaves sqlState out when there is none, and marks unknown outcomes", () => {
    const err = translate(native({ code: "CONNECTION_ERROR", message: "lost", retryable: true, unknown: true }));
    expect(err.code).toBe("CONNECTION_ERROR");
    expect(err.retryable).toBe(true);
    expect("sqlState" in err).toBe(false);
    expect(outcomeUnknown(err)).toBe(true);
  });

  it("passes through errors without the mark, with a mark but no JSON, and non-errors", () => {
    const plain = new TypeError("boom");
    expect(translate(plain)).toBe(plain);
    const garbled = new Error("\u001fnot json");
    expect(translate(garbled)).toBe(garbled);
    expect(translate("a string")).toBe("a string");
    expect(translate(undefined)).toBe(undefined);
  });
});

describe("PostgresStoreError", () => {
  it("defaults retryable to false and carries a cause", () => {
    const cause = new Error("under");
    const err = new PostgresStoreError("BUNDLED", "bundled", { cause });
    expect(err.retryable).toBe(false);
    expect(err.cause).toBe(cause);
    expect(storeError("INVALID_ARGUMENT", "bad", "22P02").sqlState).toBe("22P02");
  });
});

describe("run", () => {
  it("resolves what the call returns and rejects translated native errors, sync or async", async () => {
    await expect(run(() => 7)).resolves.toBe(7);
    await expect(run(async () => "x")).resolves.toBe("x");
    const sync = run(() => {
      throw native({ code: "QUERY_TIMEOUT", message: "slow", retryable: true });
    });
    await expect(sync).rejects.toMatchObject({ name: "PostgresStoreError", code: "QUERY_TIMEOUT", retryable: true });
    await expect(run(() => Promise.reject(native({ code: "OVERLOADED", message: "busy", retryable: true })))).rejects.toBeInstanceOf(PostgresStoreError);
  });
});
