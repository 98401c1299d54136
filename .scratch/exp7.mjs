import pg from "pg";
import { PostgresStreamStore } from "../index.js";
const pool = new pg.Pool({ connectionString: process.env.U, max: 10 });
const t0 = performance.now();
const orig = pool.query.bind(pool);
const log = [];
const store = new PostgresStreamStore(pool, { citus: true });
const id = `p-${Date.now()}`; await store.create(id);
for (let i = 0; i < 30; i++) await store.append(id, "x");
const c0 = pool.connect.bind(pool);
pool.connect = async (...a) => { const c = await c0(...a); if (!c.__w) { c.__w = 1; const q = c.query.bind(c); c.query = (x, ...r) => { const s = performance.now(); const text = (x.text ?? x).slice(0, 50); const p = q(x, ...r); Promise.resolve(p).then(() => log.push([text, (s - t0).toFixed(2), (performance.now() - s).toFixed(2)])).catch(() => {}); return p; }; } return c; };
for (let i = 0; i < 3; i++) { const s = performance.now(); await store.append(id, "x"); log.push(["--- append done", (s - t0).toFixed(2), (performance.now() - s).toFixed(2)]); }
await new Promise((r) => setTimeout(r, 50));
for (const l of log) console.log(l.join("  "));
await store.close(); await pool.end();
