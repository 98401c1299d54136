// A store made without a client (an unset DATABASE_URL while a framework builds and
// imports route modules) is created; each call then rejects, saying what is missing.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { PostgresConversationStore, PostgresStreamStore, migrate } from "../index.js";
import { rejection } from "./helpers.js";

const any = (value: unknown) => value as string;
const missing = { code: "INVALID_ARGUMENT", message: expect.stringMatching(/no connection string or client was given.*DATABASE_URL unset.*build time/) };
const entry = fileURLToPath(new URL("../index.js", import.meta.url));

describe.each([
  ["undefined", undefined],
  ["null", null],
  ['""', ""],
])("a store made with %s", (_name, client) => {
  it("is created, and every stream call rejects with INVALID_ARGUMENT naming the missing client", async () => {
    const store = new PostgresStreamStore(any(client));
    expect(store.closed).toBe(false);
    for (const call of [
      () => store.create("s"),
      () => store.append("s", "x"),
      () => store.getStatus("s"),
      () => store.stop("s"),
      () => store.complete("s"),
      () => store.fail("s", "e"),
      () => store.cleanup(),
      () => store.readFrom("s", 0).next(),
    ]) {
      expect(await rejection(call())).toMatchObject(missing);
    }
    await store.close();
    expect(store.closed).toBe(true);
    expect(await rejection(store.create("s"))).toMatchObject({ code: "STORE_CLOSED" });
  });

  it("is created, and every conversation call rejects the same way", async () => {
    const store = new PostgresConversationStore(any(client), { table: "chats" });
    for (const call of [
      () => store.loadJSON("c"),
      () => store.saveJSON("c", "{}"),
      () => store.load("c"),
      () => store.save("c", { toJSON: () => "{}" }),
      () => store.delete("c"),
      () => store.cleanup(),
    ]) {
      expect(await rejection(call())).toMatchObject(missing);
    }
    await store.close();
  });

  it("migrate() rejects the same way", async () => {
    expect(await rejection(migrate(any(client)))).toMatchObject(missing);
  });
});

describe("a store made without a client", () => {
  it("still refuses invalid options at once", () => {
    expect(() => new PostgresStreamStore(undefined, { ttlMs: -1 })).toThrow(expect.objectContaining({ code: "INVALID_OPTION" }));
    expect(() => new PostgresStreamStore(undefined, { poolSize: 0 })).toThrow(expect.objectContaining({ code: "INVALID_OPTION" }));
    expect(() => new PostgresConversationStore(null, { table: "a.b.c" })).toThrow(expect.objectContaining({ code: "INVALID_OPTION" }));
    expect(() => new PostgresStreamStore(undefined, "fast" as unknown as object)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });

  it("opens nothing: a process that only creates such stores exits at once", async () => {
    const script =
      `const { PostgresStreamStore, PostgresConversationStore } = await import(${JSON.stringify(entry)});` +
      "const before = process.getActiveResourcesInfo();" +
      "new PostgresStreamStore(undefined); new PostgresConversationStore(process.env.NO_SUCH_VARIABLE);" +
      "console.log(JSON.stringify({ before, after: process.getActiveResourcesInfo() }));";
    const started = Date.now();
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], { timeout: 10_000 });
    // A garbage collection during the constructors queues Node-API finalizers as one
    // native Immediate, which runs on the next loop turn and cannot hold the process:
    // only lasting resources (sockets, timers, other handles) are compared.
    const lasting = (names: string[]) => names.filter((name) => name !== "Immediate");
    const { before, after } = JSON.parse(stdout);
    expect(lasting(after)).toEqual(lasting(before));
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
