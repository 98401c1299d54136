// Scale-out: P processes x R readers against one PostgreSQL with max_connections 100 (a
// throwaway server of its own), every process with a store built from the connection
// string and DEFAULT options. One more process writes: S streams, C chunks each, one round
// of S appends every G ms; each chunk carries the wall-clock time its append was sent.
// Reader i of every process tails stream i % S.
//
// Reports: chunks delivered (and missing, repeated, out of order), calls that failed,
// connection attempts the server refused (53300, as counted by each pool), the most
// connections open at once and LISTEN connections (sampled from pg_stat_activity every
// 50 ms), and the latency from append sent to chunk received (p50 / p99 / max).
//
//   node benchmark/scale-out.mjs [--processes 16] [--readers 10] [--streams 10]
//     [--chunks 50] [--gap 50] [--max-connections 100] [--package ../index.js]
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import { startThrowaway } from "../scripts/throwaway-postgres.mjs";

const { values: o } = parseArgs({
  options: {
    processes: { type: "string", default: "16" },
    readers: { type: "string", default: "10" },
    streams: { type: "string", default: "10" },
    chunks: { type: "string", default: "50" },
    gap: { type: "string", default: "50" },
    "max-connections": { type: "string", default: "100" },
    package: { type: "string", default: fileURLToPath(new URL("../index.js", import.meta.url)) },
    limit: { type: "string", default: "60" },
    child: { type: "string" },
  },
});
const P = Number(o.processes),
  R = Number(o.readers),
  S = Number(o.streams),
  C = Number(o.chunks),
  G = Number(o.gap);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * What a child reports (process.send): its failed calls, each reader's [seq, lag ms] per
 * chunk, its store's stats() (whatever the --package version gives) and the writer's
 * append times.
 * @typedef {{ errors: string[], read: [number, number][][], stats?: any, appendMs?: number[] }} Report
 */

if (o.child) {
  // A child: "read" or "write".
  const { PostgresStreamStore } = await import(o.package);
  const ids = JSON.parse(/** @type {string} */ (process.env.IDS));
  const store = new PostgresStreamStore(process.env.URL);
  /** @type {Report} */
  const out = { errors: [], read: [] };
  // Past --limit seconds a child reports what it has (an old version may never finish).
  // A server keeps its event loop alive; so does this child until it has reported.
  const alive = setInterval(() => {}, 1000);
  let reported = false;
  const report = async () => {
    if (reported) return;
    reported = true;
    clearInterval(alive);
    out.stats = store.stats?.() ?? {};
    /** @type {NonNullable<typeof process.send>} */ (process.send)(out);
    process.disconnect();
    setTimeout(() => process.exit(0), 200).unref();
  };
  setTimeout(
    () => {
      out.errors.push("TIMED_OUT the run did not finish within --limit");
      report();
    },
    Number(o.limit) * 1000,
  ).unref();
  const failed = (err) => out.errors.push(`${err.code} ${err.sqlState ?? ""} ${err.message}`.slice(0, 300));
  if (o.child === "read") {
    const readers = Array.from({ length: R }, async (_, i) => {
      const got = [];
      out.read.push(got);
      try {
        for await (const { seq, data } of store.readFrom(ids[i % S], 0)) got.push([seq, Date.now() - Number(data)]);
      } catch (err) {
        failed(err);
      }
      return got;
    });
    /** @type {NonNullable<typeof process.send>} */ (process.send)("ready");
    await Promise.all(readers);
  } else {
    await new Promise((resolve) => process.once("message", resolve));
    for (let c = 0; c < C; c++) {
      const started = Date.now();
      await Promise.all(
        ids.map(async (id) => {
          const sent = Date.now();
          await store.append(id, String(sent)).catch(failed);
          (out.appendMs ??= []).push(Date.now() - sent);
        }),
      );
      await sleep(Math.max(0, G - (Date.now() - started)));
    }
    await Promise.all(ids.map((id) => store.complete(id).catch(failed)));
  }
  await store.close();
  await report();
} else {
  const server = await startThrowaway({ settings: { max_connections: o["max-connections"] } });
  const admin = new pg.Client(server.url);
  await admin.connect();
  await admin.query(`CREATE TABLE aibind_stream_chunks (id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (id, seq));
    CREATE TABLE aibind_stream_status (id TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'active', error TEXT,
      total_chunks INTEGER NOT NULL DEFAULT 0, expires_at BIGINT NOT NULL)`);
  const ids = Array.from({ length: S }, (_, i) => `scale-${i}`);
  for (const id of ids)
    await admin.query("INSERT INTO aibind_stream_status (id, expires_at) VALUES ($1, $2)", [
      id,
      Date.now() + 3_600_000,
    ]);
  const self = fileURLToPath(import.meta.url);
  const child = (role) => {
    const args = [
      self,
      "--child",
      role,
      "--readers",
      String(R),
      "--streams",
      String(S),
      "--chunks",
      String(C),
      "--gap",
      String(G),
      "--package",
      o.package,
      "--limit",
      o.limit,
    ];
    const proc = spawn(process.execPath, args, {
      env: { ...process.env, URL: server.url, IDS: JSON.stringify(ids) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const result = new Promise((resolve) => {
      proc.on("message", (m) => m !== "ready" && resolve(m));
      proc.on("exit", (code, signal) =>
        resolve({ errors: [`EXITED ${code ?? signal} before reporting`], read: [], stats: {} }),
      );
    });
    /** @type {Promise<void>} */
    const ready = new Promise((resolve) => proc.on("message", (m) => m === "ready" && resolve()));
    return { proc, result, ready };
  };
  let most = 0,
    listening = 0,
    sampling = true;
  const timeline = [];
  const sampler = (async () => {
    while (sampling) {
      const { rows } = await admin.query(
        "SELECT count(*)::int AS n, count(*) FILTER (WHERE query LIKE 'LISTEN%')::int AS l FROM pg_stat_activity WHERE backend_type = 'client backend'",
      );
      most = Math.max(most, rows[0].n);
      if (process.env.SCALE_DEBUG) timeline.push(`${Date.now() % 100000}:${rows[0].n}/${rows[0].l}`);
      listening = Math.max(listening, rows[0].l);
      await sleep(50);
    }
  })();
  const readers = Array.from({ length: P }, () => child("read"));
  await Promise.all(readers.map((r) => r.ready));
  await sleep(1500); // the readers wait; listeners connect
  const writer = child("write");
  const started = Date.now();
  writer.proc.send("go");
  const results = await Promise.all([...readers, writer].map((r) => r.result));
  const seconds = (Date.now() - started) / 1000;
  sampling = false;
  await sampler;
  let delivered = 0,
    missing = 0,
    wrong = 0,
    refused = 0,
    errors = [];
  const latencies = [];
  for (const [i, r] of results.entries()) {
    errors.push(...r.errors);
    refused += Number(r.stats?.connectionsRefused ?? 0);
    if (i === results.length - 1) continue;
    for (const got of r.read) {
      delivered += got.length;
      missing += Math.max(0, C - got.length);
      got.forEach(([seq, ms], k) => {
        if (seq !== k + 1) wrong++;
        latencies.push(ms);
      });
    }
  }
  latencies.sort((a, b) => a - b);
  const appendMs = (results.at(-1).appendMs ?? []).sort((a, b) => a - b);
  const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  const row = {
    processes: P,
    readersPerProcess: R,
    maxConnections: Number(o["max-connections"]),
    chunksExpected: P * R * C,
    delivered,
    missing,
    outOfOrderOrRepeated: wrong,
    failedCalls: errors.length,
    refused53300: refused,
    mostConnections: most,
    listenConnections: listening,
    p50ms: pct(50),
    p99ms: pct(99),
    maxMs: latencies.at(-1),
    appendP50ms: appendMs[Math.floor(appendMs.length / 2)],
    appendP99ms: appendMs[Math.floor(appendMs.length * 0.99)],
    seconds: Number(seconds.toFixed(1)),
  };
  console.log(JSON.stringify(row));
  if (errors.length) console.log("first errors:", [...new Set(errors.map((e) => e.slice(0, 160)))].slice(0, 4));
  if (process.env.SCALE_DEBUG) {
    console.log(timeline.join(" "));
    console.log(results.map((r) => `${r.stats.size}/${r.stats.connectionsRefused}`).join(" "));
  }
  await admin.end();
  await server.stop();
}
