// Appends combined into one statement (the Rust pool's lane, src/backend/pool/combine/)
// each land at the seq they ask for, or not at all. The store's own appends never put two
// calls of one stream in one batch (lib/appends.cjs sends a stream's appends one at a
// time), so this drives the native store directly: calls of one stream whose seqs do not
// follow one another must not be stored at seqs they did not ask for.
import { afterAll, beforeAll, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { createRequire } from "node:module";
import { adminPool, freshSchema, uid, urlWithApp } from "./helpers.js";

// The store's native half (internal): loaded as index.js loads it, so it is the same module.
const require = createRequire(import.meta.url);
const { native } = require("../lib/store.cjs") as { native(store: object): unknown };
const { translate } = require("../lib/errors.cjs") as { translate(err: unknown): { code?: string } };
const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

type Native = { append(id: string, chunk: string, at?: number): Promise<number> };

it("a batch whose calls of one stream ask for seqs out of step stores none of them there", async () => {
  const store = new PostgresStreamStore(urlWithApp(uid("combined")), tables.stream);
  const raw = native(store) as Native;
  const id = uid("out-of-step");
  await store.create(id);
  try {
    // The first call takes the lane; the calls made with it queue, and go out together.
    const settle = (p: Promise<number>) => p.then((seq) => ({ seq }), (err) => ({ code: translate(err).code }));
    const first = settle(raw.append(uid("nowhere"), "x", 1));
    const asked = [1, 3, 2]; // out of step: the second asks for 3 before 2 is stored
    const calls = asked.map((at, i) => settle(raw.append(id, `c${i}`, at)));
    await first;
    const outcomes = await Promise.all(calls);
    const { rows } = await admin.query(`SELECT seq, data FROM ${tables.stream.chunksTable} WHERE id = $1 ORDER BY seq`, [id]);
    // Whatever was stored is at the seq its call asked for.
    for (const { seq, data } of rows as { seq: number; data: string }[]) {
      const i = Number(data.slice(1));
      expect(seq).toBe(asked[i]);
      expect(outcomes[i]).toEqual({ seq });
    }
    // The call that asked for 3 while the stream had no chunk 2 is not stored anywhere.
    expect(rows.map((r: { data: string }) => r.data)).not.toContain("c1");
    expect(outcomes[1]).toMatchObject({ code: "STREAM_NOT_ACTIVE" });
  } finally {
    await store.close();
  }
});
