import pg from "pg";
const pool = new pg.Pool({ connectionString: process.env.U, max: 2 });
const run = `y${Date.now()}`;
await pool.query("INSERT INTO aibind_stream_status (id, state, total_chunks, expires_at) VALUES ($1, 'active', 0, 0)", [run]);
const Q = {
  raw: (i) => ({ name: "raw", text: "INSERT INTO aibind_stream_chunks (id, seq, data) VALUES ($1, $2, $3)", values: [run + "r", i, "x"] }),
  update: () => ({ name: "upd", text: "UPDATE aibind_stream_status SET total_chunks = total_chunks + 1 WHERE id = $1 RETURNING total_chunks", values: [run] }),
  noopfn: () => ({ name: "noop", text: "SELECT x FROM aibind_noop($1::text) AS x", values: [run] }),
  updfn: () => ({ name: "updfn", text: "SELECT x FROM aibind_upd($1::text) AS x", values: [run] }),
  appendfn: () => ({ name: "fn", text: "SELECT seq FROM aibind_stream_status_append($1::text, $2::text, $3::bigint, $4::int, false) AS seq", values: [run, "x", 1, null] }),
};
const T = Object.fromEntries(Object.keys(Q).map((k) => [k, []]));
let n = 0;
for (let r = 0; r < 10; r++) for (const [k, q] of Object.entries(Q)) for (let i = 0; i < 40; i++) { const t = performance.now(); await pool.query(q(++n)); T[k].push(performance.now() - t); }
const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const [k, v] of Object.entries(T)) console.log(k, p50(v).toFixed(2));
await pool.end();
