import pg from "pg";
import { PostgresStreamStore } from "../index.js";
const url = process.env.U;
const pool = new pg.Pool({ connectionString: url, max: 10 });
const run = `x${Date.now()}`;
const store = new PostgresStreamStore(pool);
await store.create(run + "s");
await pool.query("INSERT INTO aibind_stream_status (id, state, total_chunks, expires_at) VALUES ($1, 'active', 0, 0)", [run + "f"]);
const T = { raw: [], fn: [], fnNotify: [], store: [] };
let n = 0, f = 0;
for (let r = 0; r < 10; r++) {
  for (let i = 0; i < 40; i++) { const t = performance.now(); await pool.query({ name: "raw", text: "INSERT INTO aibind_stream_chunks (id, seq, data) VALUES ($1, $2, $3)", values: [run + "r", ++n, "x"] }); T.raw.push(performance.now() - t); }
  for (let i = 0; i < 40; i++) { const t = performance.now(); await pool.query({ name: "fn", text: "SELECT seq, NULL::int AS notified FROM aibind_stream_status_append($1::text, $2::text, $3::bigint, $4::int, false) AS seq", values: [run + "f", "x", 1, ++f] }); T.fn.push(performance.now() - t); }
  for (let i = 0; i < 40; i++) { const t = performance.now(); await pool.query({ name: "fn", text: "SELECT seq, NULL::int AS notified FROM aibind_stream_status_append($1::text, $2::text, $3::bigint, $4::int, false) AS seq", values: [run + "f", "x", 1, ++f] }); T.fnNotify.push(performance.now() - t); pool.query("SELECT pg_notify('aibind_stream_writes', '{}')"); }
  for (let i = 0; i < 40; i++) { const t = performance.now(); await store.append(run + "s", "x"); T.store.push(performance.now() - t); }
}
const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [k, v] of Object.entries(T)) console.log(k, p50(v).toFixed(2));
await store.close(); await pool.end();
