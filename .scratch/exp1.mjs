import pg from "pg";
import { PostgresStreamStore, migrate } from "../index.js";
const url = process.env.U;
const c = new pg.Client(url); await c.connect();
await migrate(url);
for (const [t, col, co] of [["aibind_stream_status","id",null],["aibind_stream_chunks","id","aibind_stream_status"],["aibind_conversations","session_id",null]]) {
  const { rows } = await c.query("SELECT count(*)::int n FROM pg_dist_partition WHERE logicalrelid = $1::regclass", [t]);
  if (!rows[0].n) await c.query(co ? `SELECT create_distributed_table('${t}', '${col}', colocate_with => '${co}')` : `SELECT create_distributed_table('${t}', '${col}')`);
}
const mode = process.argv[2];
const client = mode === "pool" ? new pg.Pool({ connectionString: url, max: 10 }) : url;
const store = new PostgresStreamStore(client);
const ids = Array.from({ length: 20 }, (_, i) => `e-${Date.now()}-${i}`);
for (const id of ids) await store.create(id);
let fail = 0, errs = new Set();
await Promise.all(ids.map(async (id) => { await Promise.all(Array.from({ length: 50 }, (_, k) => store.append(id, `c${k}`).catch((e) => { fail++; errs.add(e.message); }))); }));
console.log(mode, "failed", fail, [...errs].slice(0, 2));
const one = `one-${Date.now()}`; await store.create(one);
const t = []; for (let i = 0; i < 200; i++) { const s = performance.now(); await store.append(one, "x"); t.push(performance.now() - s); }
t.sort((a, b) => a - b); console.log("append p50", t[100].toFixed(2));
const r = []; for (let i = 0; i < 200; i++) { const s = performance.now(); await c.query("INSERT INTO aibind_stream_chunks (id, seq, data) VALUES ($1, $2, 'x')", [one, 1000 + i]); r.push(performance.now() - s); }
r.sort((a, b) => a - b); console.log("raw insert p50", r[100].toFixed(2));
await store.close?.(); if (mode === "pool") await client.end(); await c.end();
