import pg from "pg";
const l = new pg.Client(process.env.U); await l.connect(); await l.query("LISTEN aibind_stream_writes");
const got = []; l.on("notification", (n) => got.push(n.payload));
const c = new pg.Client(process.env.U); await c.connect();
await c.query("INSERT INTO aibind_stream_status (id, state, total_chunks, expires_at) VALUES ('f1','active',0,0) ON CONFLICT (id) DO UPDATE SET state = 'active'");
const r = await c.query("WITH u AS (UPDATE aibind_stream_status SET state = 'done', expires_at = 1 WHERE id = 'f1' AND state = 'active' RETURNING id, total_chunks), p AS (SELECT total_chunks, json_build_object('o', 'o', 's', id)::text AS p FROM u) SELECT total_chunks, pg_notify('aibind_stream_writes', p) AS notified FROM p");
console.log(r.rows);
await new Promise((r) => setTimeout(r, 500)); console.log("heard", got);
await l.end(); await c.end();
