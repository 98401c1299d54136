import pg from "pg";
import { PostgresStreamStore } from "../index.js";
const url = process.env.U;
const pool = new pg.Pool({ connectionString: url, max: 10 });
async function time(name, fn) { const t = []; for (let i = 0; i < 300; i++) { const s = performance.now(); await fn(i); t.push(performance.now() - s); } t.sort((a, b) => a - b); console.log(name, "p50", t[150].toFixed(2), "p90", t[270].toFixed(2)); }
for (const [mode, client] of [["pool", pool], ["url", url]]) {
  const store = new PostgresStreamStore(client, { citus: true });
  const one = `one-${Date.now()}-${mode}`; await store.create(one);
  await time(mode + " store.append", () => store.append(one, "x"));
  const two = `two-${Date.now()}-${mode}`; await store.create(two);
  await time(mode + " store.append relaxed", () => store.append(two, "x"));
  await store.close();
}
const st = `st-${Date.now()}`; await pool.query("INSERT INTO aibind_stream_status (id, state, total_chunks, expires_at) VALUES ($1, 'active', 0, 0)", [st]);
await time("pg fn call named", (i) => pool.query({ name: "fn", text: "SELECT seq, NULL::int AS notified FROM aibind_stream_status_append($1::text, $2::text, $3::bigint, $4::int, false) AS seq", values: [st, "x", 1, i + 1] }));
await time("raw insert", (i) => pool.query("INSERT INTO aibind_stream_chunks (id, seq, data) VALUES ($1, $2, 'x')", [st + "r", i]));
await time("notify", (i) => pool.query("SELECT pg_notify('aibind_stream_writes', $1)", ["{}"]));
await pool.end();
