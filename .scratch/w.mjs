import pg from "pg";
import { PostgresStreamStore } from "../index.js";
import { BaselineStreamStore } from "../benchmark/baseline.mjs";
const [mode, n, reader] = [process.argv[2], +process.argv[3], process.argv[4] === "r"];
const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test", max: 10, ...(process.env.DURABLE ? {} : { options: mode === "js" ? undefined : "-c synchronous_commit=off" }) });
const t = { chunksTable: "prodbench.aibind_stream_chunks", statusTable: "prodbench.aibind_stream_status", ...(process.env.DURABLE ? {} : { synchronousCommit: false }) };
const store = mode === "js" ? new PostgresStreamStore(pool, t) : new BaselineStreamStore(pool, t);
const id = `w-${mode}-${process.pid}-${Date.now()}`;
await store.create(id);
let got = 0;
const r = reader ? (async () => { for await (const c of store.readFrom(id, 0)) got++; })() : null;
await new Promise((r) => setTimeout(r, 200));
const c0 = process.cpuUsage(); const t0 = performance.now();
const marks = []; let tm = performance.now();
for (let i = 0; i < n; i++) { await store.append(id, `token ${i} `); if (i % 250 === 249) { const x = performance.now(); marks.push(Math.round(250000 / (x - tm))); tm = x; } }
const ms = performance.now() - t0; const cpu = process.cpuUsage(c0);
await store.complete(id); if (r) await r;
console.log(mode, reader ? "reader" : "alone", Math.round(n / ms * 1000), "/s", "cpu us/chunk", ((cpu.user + cpu.system) / n).toFixed(1), "got", got, process.env.MARKS ? marks.join(" ") : "");
await store.close?.(); await pool.end();
