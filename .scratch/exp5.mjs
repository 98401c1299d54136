import pg from "pg";
const c = new pg.Client(process.env.U); await c.connect();
async function time(name, fn) { const t = []; for (let i = 0; i < 150; i++) { const s = performance.now(); await fn(i); t.push(performance.now() - s); } t.sort((a, b) => a - b); console.log(name, t[75].toFixed(2)); }
await time("raw insert", (i) => c.query("INSERT INTO aibind_stream_chunks (id, seq, data) VALUES ($1, $2, 'x')", ["x3", i + 100000 * Math.random()|0]).catch(()=>{}));
await time("srf target", () => c.query({name: "a", text: "SELECT aibind_append_s($1::text, $2::text, $3::bigint, $4::int, false) AS seq, NULL::int AS notified", values: ["x2", "d", 1, null]}));
await time("srf from", () => c.query({name: "b", text: "SELECT seq, NULL::int AS notified FROM aibind_append_s($1::text, $2::text, $3::bigint, $4::int, false) AS seq", values: ["x2", "d", 1, null]}));
await time("srf target relaxed", () => c.query({name: "c", text: "SELECT aibind_append_s($1::text, $2::text, $3::bigint, $4::int, true) AS seq, NULL::int AS notified", values: ["x2", "d", 1, null]}));
await c.end();
