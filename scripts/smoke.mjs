#!/usr/bin/env node
// `node scripts/smoke.mjs` (or `bun scripts/smoke.mjs`, `deno run -A scripts/smoke.mjs`),
// with DATABASE_URL set: a stream end to end in whatever runtime and binary runs it, as an
// app would use the package. Through a connection string and through a pg.Pool: a reader
// waiting on a stream wakes for chunks appended by another process (this script again,
// with `write ID`), then reads the whole stream again and its status. Exits non-zero, with
// the reason, on any difference. scripts/build-linux.sh runs it on each binary it builds
// (arm64 under qemu-user); frameworks/runtimes.mjs under Bun and Deno.
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import pg from "pg";

// The package: this repository's, or (AIBIND_PACKAGE=@aibind-rs/postgres) the one installed
// in the app that runs this file.
const { migrate, PostgresStreamStore } = /** @type {typeof import("../index.js")} */ (
  await import(process.env.AIBIND_PACKAGE ?? "../index.js")
);

const url = process.env.DATABASE_URL;
if (!url) throw new Error("smoke: DATABASE_URL is not set");
const chunks = ["Hel", "lo, ", "wor", "ld ✓"];
const runtime = typeof globalThis.Bun === "object" ? "bun" : typeof globalThis.Deno === "object" ? "deno" : "node";

/** Another process of this runtime that appends the chunks and completes the stream. */
/** @param {string} id @param {string} client @returns {Promise<void>} */
function writer(id, client) {
  const self = fileURLToPath(import.meta.url);
  const args = runtime === "deno" ? ["run", "-A", self] : [self];
  return new Promise((resolve, reject) => {
    // SMOKE_WRAPPER: what runs this runtime's binary, e.g. "qemu-aarch64 -L /" for an arm64 Node.
    const wrapper = (process.env.SMOKE_WRAPPER ?? "").split(" ").filter(Boolean);
    const argv = [...wrapper, process.execPath, ...args, "write", id, client];
    const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(undefined) : reject(new Error(`smoke: the writer exited with ${code}`)),
    );
  });
}

async function write(id, client) {
  const pool = client === "pool" ? new pg.Pool({ connectionString: url, max: 2 }) : null;
  const store = new PostgresStreamStore(pool ?? url);
  for (const [i, chunk] of chunks.entries()) {
    const seq = await store.append(id, chunk);
    if (seq !== i + 1) throw new Error(`smoke: append ${i} stored at seq ${seq}`);
    await new Promise((resolve) => setTimeout(resolve, 30));
  }
  await store.complete(id);
  await store.close();
  await pool?.end();
}

async function roundTrip(client) {
  const pool = client === "pool" ? new pg.Pool({ connectionString: url, max: 2 }) : null;
  const store = new PostgresStreamStore(pool ?? url);
  const id = `smoke-${runtime}-${client}-${process.pid}-${Date.now()}`;
  await store.create(id);
  // The reader waits first: the writer's chunks reach it across processes.
  const reading = (async () => {
    const seen = [];
    for await (const { seq, data } of store.readFrom(id, 0)) seen.push(`${seq}:${data}`);
    return seen;
  })();
  const started = performance.now();
  await writer(id, client);
  const live = await reading;
  const expected = chunks.map((c, i) => `${i + 1}:${c}`);
  if (JSON.stringify(live) !== JSON.stringify(expected)) throw new Error(`smoke: live read ${JSON.stringify(live)}`);
  const resumed = [];
  for await (const { seq, data } of store.readFrom(id, 2)) resumed.push(`${seq}:${data}`);
  if (JSON.stringify(resumed) !== JSON.stringify(expected.slice(2)))
    throw new Error(`smoke: resumed read ${JSON.stringify(resumed)}`);
  const status = await store.getStatus(id);
  if (status?.state !== "done") throw new Error(`smoke: status ${JSON.stringify(status)}`);
  await store.close();
  await pool?.end();
  console.log(
    `smoke (${runtime} ${process.versions[runtime] ?? process.version}, ${process.arch}, ${client}): ` +
      `${chunks.length} chunks across processes, resumed, done (${Math.round(performance.now() - started)} ms)`,
  );
}

const [command, id, client] = process.argv.slice(2);
if (command === "write") await write(id, client);
else {
  await migrate(url);
  await roundTrip("url");
  await roundTrip("pool");
}
