import pg from "pg";
const c = new pg.Client(process.env.U); await c.connect();
await c.query("INSERT INTO aibind_stream_status (id, state, total_chunks, expires_at) VALUES ('x2','active',0,0) ON CONFLICT (id) DO UPDATE SET total_chunks = 0");
await c.query("DELETE FROM aibind_stream_chunks WHERE id = 'x2'");
async function time(name, fn) { const t = []; for (let i = 0; i < 150; i++) { const s = performance.now(); await fn(i); t.push(performance.now() - s); } t.sort((a, b) => a - b); console.log(name, t[75].toFixed(2)); }
await time("raw insert", (i) => c.query("INSERT INTO aibind_stream_chunks (id, seq, data) VALUES ($1, $2, 'x')", ["x3", i + 10000 * Math.random()|0]).catch(()=>{}));
const U1 = "UPDATE aibind_stream_status SET total_chunks = total_chunks + 1, expires_at = $2::bigint WHERE id = $1::text AND state = 'active' AND ($3::int IS NULL OR total_chunks = $3::int - 1) RETURNING total_chunks";
await time("txn update+insert (4 round trips)", async () => { await c.query("BEGIN"); const r = await c.query(U1, ["x2", 1, null]); await c.query("INSERT INTO aibind_stream_chunks (id, seq, data) VALUES ($1, $2, $3)", ["x2", r.rows[0].total_chunks, "d"]); await c.query("COMMIT"); });
await time("function unnamed", () => c.query("SELECT aibind_append_x($1::text, $2::text, $3::bigint, $4::int) AS seq", ["x2", "d", 1, null]));
await time("function named", () => c.query({ name: "f", text: "SELECT aibind_append_x($1::text, $2::text, $3::bigint, $4::int) AS seq", values: ["x2", "d", 1, null] }));
const r = await c.query("SELECT count(*) FROM aibind_stream_chunks WHERE id = 'x2'"); console.log(r.rows);
await c.end();
