// Wake-ups know a status table however its name is spelled: folded case, with or without
// the default schema, across backends.
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { PostgresStreamStore, type PostgresClient } from "../index.js";
import { DATABASE_URL, adminPool, collect, ddl, sleep, uid } from "./helpers.js";

const admin = adminPool();
afterAll(() => admin.end());

describe("wake-ups know a table however it is spelled", () => {
  it("stores that spell one status table differently wake each other's readers", async () => {
    const base = `wk_${uid().slice(2, 10).replace(/-/g, "")}`;
    await admin.query(ddl({ chunksTable: `public.${base}_chunks`, statusTable: `public.${base}_status`, conversationsTable: `public.${base}_convs` }));
    try {
      // The readers never poll within the test: only a wake-up can deliver.
      const slow = { pollIntervalMs: 60_000, listen: false };
      const readerStore = new PostgresStreamStore(DATABASE_URL, { chunksTable: `${base}_chunks`, statusTable: `${base}_status`, ...slow });
      const upper = new PostgresStreamStore(DATABASE_URL, { chunksTable: `${base}_CHUNKS`.toUpperCase(), statusTable: `PUBLIC.${base}_STATUS`.toUpperCase(), ...slow });
      const qualified = new PostgresStreamStore(new pg.Pool({ connectionString: DATABASE_URL, max: 2 }) as PostgresClient, {
        chunksTable: `public.${base}_chunks`,
        statusTable: `public.${base}_status`,
      });
      const id = uid("spell");
      await upper.create(id);
      const reading = collect(readerStore.readFrom(id, 0));
      await sleep(200); // the reader waits
      await upper.append(id, "from upper case");
      await qualified.append(id, "from public.");
      const started = Date.now();
      await qualified.complete(id);
      const chunks = await reading;
      expect(chunks.map((c) => c.data)).toEqual(["from upper case", "from public."]);
      expect(Date.now() - started).toBeLessThan(2_000);
      for (const s of [readerStore, upper, qualified]) await s.close();
    } finally {
      await admin.query(`DROP TABLE public.${base}_chunks, public.${base}_status, public.${base}_convs`);
    }
  });
});
