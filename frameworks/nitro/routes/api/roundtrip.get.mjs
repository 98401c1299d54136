// GET /api/roundtrip: a stream written and read back through the package, from the
// deployed .output/ folder (frameworks/test.mjs).
import { PostgresStreamStore } from "@aibind-rs/postgres";
import { defineEventHandler } from "h3";

/** @type {PostgresStreamStore | undefined} */
let store;

export default defineEventHandler(async () => {
  store ??= new PostgresStreamStore(String(process.env.DATABASE_URL));
  const id = `nitro-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  await store.create(id);
  for (const word of ["Hel", "lo", "!"]) await store.append(id, word);
  await store.complete(id);
  const chunks = [];
  for await (const { seq, data } of store.readFrom(id, 0)) chunks.push(`${seq}:${data}`);
  return { id, chunks, status: (await store.getStatus(id))?.state };
});
