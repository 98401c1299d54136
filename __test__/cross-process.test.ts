// Wake-ups across processes (connection strings): a reader here, a writer in a child
// process with its own store. The reader's poll interval is a minute, so only a
// notification can deliver within the test's time.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore } from "../index.js";
import { DATABASE_URL, adminPool, collect, eventually, freshSchema, uid, urlWithApp } from "./helpers.js";

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const admin = adminPool();
let tables: Awaited<ReturnType<typeof freshSchema>>;

beforeAll(async () => {
  tables = await freshSchema(admin);
});
afterAll(async () => {
  await tables.drop();
  await admin.end();
});

/** Appends `count` chunks 20 ms apart from another process, then completes the stream. */
async function writeFromAnotherProcess(id: string, count: number) {
  const script = `
    import { PostgresStreamStore } from ${JSON.stringify(`${root}index.js`)};
    const store = new PostgresStreamStore(process.env.DATABASE_URL, ${JSON.stringify(tables.stream)});
    for (let i = 1; i <= ${count}; i++) {
      await store.append(${JSON.stringify(id)}, "chunk " + i);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await store.complete(${JSON.stringify(id)});
    await store.close();
  `;
  await run(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, DATABASE_URL }, timeout: 20_000 });
}


async function listeners(app: string) {
  const { rows } = await admin.query(
    "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query = 'LISTEN aibind_stream_writes'",
    [app],
  );
  return rows.map((r) => r.pid as number);
}


const expected = (n: number) => Array.from({ length: n }, (_, i) => ({ seq: i + 1, data: `chunk ${i + 1}` }));

describe("cross-process wake-ups (LISTEN/NOTIFY)", () => {
  it("wakes a reader on another process's appends and completion", async () => {
    const app = `aibind_x_${uid().slice(2, 14)}`;
    const reader = new PostgresStreamStore(urlWithApp(app), { ...tables.stream, pollIntervalMs: 60_000 });
    const id = uid();
    await reader.create(id);
    const reading = collect(reader.readFrom(id, 0));
    await eventually(async () => (await listeners(app)).length === 1); // one connection, however many readers
    const started = Date.now();
    await writeFromAnotherProcess(id, 5);
    expect(await reading).toEqual(expected(5));
    expect(Date.now() - started).toBeLessThan(20_000);
    await reader.close();
  });

  it("reconnects a lost listener; readers catch up from their cursors, nothing missed or repeated", async () => {
    const app = `aibind_x_${uid().slice(2, 14)}`;
    const reader = new PostgresStreamStore(urlWithApp(app), { ...tables.stream, pollIntervalMs: 60_000 });
    const ids = [uid(), uid()];
    for (const id of ids) await reader.create(id);
    const readings = ids.map((id) => collect(reader.readFrom(id, 0)));
    await eventually(async () => (await listeners(app)).length === 1);
    const [pid] = await listeners(app);
    await admin.query("SELECT pg_terminate_backend($1)", [pid]);
    // Written while the listener is down or coming back.
    await Promise.all(ids.map((id) => writeFromAnotherProcess(id, 4)));
    for (const reading of readings) expect(await reading).toEqual(expected(4));
    await eventually(async () => {
      const now = await listeners(app);
      return now.length === 1 && now[0] !== pid;
    });
    await reader.close();
  });

  it("still hears a writer that does not notify (the original package) while listening, through the shared check", async () => {
    const app = `aibind_x_${uid().slice(2, 14)}`;
    const reader = new PostgresStreamStore(urlWithApp(app), { ...tables.stream, pollIntervalMs: 50 });
    const id = uid();
    await reader.create(id);
    const reading = collect(reader.readFrom(id, 0));
    await eventually(async () => (await listeners(app)).length === 1);
    // The original's append and completion, as plain SQL: no NOTIFY.
    for (let i = 1; i <= 3; i++) {
      await admin.query(
        `WITH u AS (UPDATE ${tables.stream.statusTable} SET total_chunks = total_chunks + 1 WHERE id = $1 AND state = 'active' RETURNING total_chunks)
         INSERT INTO ${tables.stream.chunksTable} (id, seq, data) SELECT $1, total_chunks, $2 FROM u`,
        [id, `chunk ${i}`],
      );
    }
    await admin.query(`UPDATE ${tables.stream.statusTable} SET state = 'done' WHERE id = $1`, [id]);
    const started = Date.now();
    expect(await reading).toEqual(expected(3));
    // Checked once a second while notifications arrive (not every pollIntervalMs).
    expect(Date.now() - started).toBeLessThan(5_000);
    await reader.close();
  });

  it("with listen: false opens no LISTEN connection and falls back to polling", async () => {
    const app = `aibind_x_${uid().slice(2, 14)}`;
    const reader = new PostgresStreamStore(urlWithApp(app), { ...tables.stream, pollIntervalMs: 50, listen: false });
    const id = uid();
    await reader.create(id);
    const reading = collect(reader.readFrom(id, 0));
    await writeFromAnotherProcess(id, 3);
    expect(await reading).toEqual(expected(3));
    expect(await listeners(app)).toEqual([]);
    await reader.close();
  });
});
