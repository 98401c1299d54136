// One producer awaiting each append, as DurableStream does: with the Rust pool, an append
// alone on the lane announces its chunk in its own transaction (one statement and one
// commit a chunk, not two), while that measures no slower (src/backend/pool/combine/
// notify_choice.rs). A reader on another pool reads every chunk, in order (readers in
// other processes: cross-process.test.ts).
import { afterAll, beforeAll, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, collect, freshSchema, sleep, uid, urlWithApp } from "./helpers.js";

const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

it("a lone producer's appends cost one statement each, and a reader elsewhere gets every chunk in order", async () => {
  const producer = new PostgresStreamStore(DATABASE_URL, tables.stream);
  // Another pool (another connection string).
  const elsewhere = new PostgresStreamStore(urlWithApp("elsewhere"), tables.stream);
  try {
    const id = uid("lone");
    await producer.create(id);
    const reading = collect(elsewhere.readFrom(id, 0));
    await sleep(300); // the reader waits at the end, listening
    const before = producer.stats().statementsSent!;
    const n = 600;
    for (let i = 1; i <= n; i++) await producer.append(id, `token ${i}`);
    const statements = producer.stats().statementsSent! - before;
    await producer.complete(id);
    const read = await reading;
    expect(read).toEqual(Array.from({ length: n }, (_, i) => ({ seq: i + 1, data: `token ${i + 1}` })));
    // Announced after the append instead, each chunk would cost two statements. Trials
    // of that way (8 of every 256 appends), the pool's own checks and, on a machine
    // busy enough to make one epoch's trials look slow inside, that epoch cost more.
    expect(statements).toBeLessThan(n * 1.6);
    expect(statements).toBeGreaterThanOrEqual(n);
  } finally {
    await producer.close();
    await elsewhere.close();
  }
});
