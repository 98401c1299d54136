import pg from "pg";
const c = new pg.Client(process.env.U); await c.connect();
await c.query("INSERT INTO aibind_stream_status (id, state, total_chunks, expires_at) VALUES ('x2','active',0,0) ON CONFLICT (id) DO UPDATE SET total_chunks = 0");
await c.query("DELETE FROM aibind_stream_chunks WHERE id = 'x2'");
async function time(name, fn) { const t = []; for (let i = 0; i < 150; i++) { const s = performance.now(); await fn(i); t.push(performance.now() - s); } t.sort((a, b) => a - b); console.log(name, t[75].toFixed(2)); }
const V1 = "WITH ins AS (INSERT INTO aibind_stream_chunks (id, seq, data) SELECT id, total_chunks + 1, $2::text FROM aibind_stream_status WHERE id = $1::text AND state = 'active' AND ($4::int IS NULL OR total_chunks = $4::int - 1) FOR UPDATE RETURNING seq) UPDATE aibind_stream_status SET total_chunks = total_chunks + 1, expires_at = $3::bigint WHERE id = $1::text AND EXISTS (SELECT 1 FROM ins) RETURNING total_chunks AS seq";
await time("raw insert", (i) => c.query("INSERT INTO aibind_stream_chunks (id, seq, data) VALUES ($1, $2, 'x')", ["x3", i + 10000 * Math.random()|0]).catch(()=>{}));
await time("v1 unnamed", () => c.query(V1, ["x2", "d", 1, null]));
await time("v1 named", () => c.query({ name: "v1", text: V1, values: ["x2", "d", 1, null] }));
await c.query("SET plan_cache_mode = force_custom_plan");
await time("v1 named custom", () => c.query({ name: "v1", text: V1, values: ["x2", "d", 1, null] }));
await c.query("RESET plan_cache_mode");
const U1 = "UPDATE aibind_stream_status SET total_chunks = total_chunks + 1, expires_at = $3::bigint WHERE id = $1::text AND state = 'active' AND ($4::int IS NULL OR total_chunks = $4::int - 1) RETURNING total_chunks";
await time("txn update+insert (3 round trips)", async () => { await c.query("BEGIN"); const r = await c.query(U1, ["x2", "d", 1, null]); await c.query("INSERT INTO aibind_stream_chunks (id, seq, data) VALUES ($1, $2, $3)", ["x2", r.rows[0].total_chunks, "d"]); await c.query("COMMIT"); });
await c.end();
