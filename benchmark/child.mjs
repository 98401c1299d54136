// A second process for the benchmark, with a store of its own in the given mode.
//   node child.mjs write <mode> <tables JSON> <id> <count> [streams]   appends `count`
//     chunks 20 ms apart (each chunk is the wall-clock time it was sent), then completes
//     the stream; given `streams`, to streams <id>-0 .. <id>-(streams-1) at once, their
//     schedules 20 ms / streams apart. Prints {"acked"}: per stream, the wall-clock time
//     each append resolved, by seq
//   node child.mjs tail <mode> <tables JSON> <id> <count> [readers] [streams]   opens
//     `readers` (default 1) live readers of the stream (of each of those streams), prints
//     "ready" once they wait, reads to the end and prints {"lags", "delivered",
//     "problems", "received"}: each chunk's lag from the wall-clock time in its data,
//     whatever was missing, repeated or out of order (each reader must see seqs 1..count
//     in order), and per stream the wall-clock time its first reader got each seq
//   node child.mjs produce <mode> <tables JSON> <id> <count> [options JSON]   creates the
//     stream (the store made with those options), starts one live reader of it here,
//     appends `count` chunks one after another, each awaited, completes it and prints
//     {"chunksPerSecond", "delivered", "problems"}; {"unsupported"} if the store refused
//     the options (INVALID_OPTION)
//   node child.mjs produce-only <mode> <tables JSON> <id> <count>   appends `count` chunks
//     to the (existing) stream one after another, each awaited and carrying its
//     wall-clock send time, completes it and prints {"chunksPerSecond"}
//   node child.mjs idle <mode> <tables JSON> <id prefix> <count>   opens a reader on each
//     of `count` streams, prints "ready" and waits until it is killed
//   node child.mjs stopper <mode> <tables JSON> - 0    stops each stream whose id comes on
//     stdin (a line each), after printing "ready"
//   node child.mjs replay <mode> <tables JSON> <id>           reads the stream through and
//     prints {"chunks", "rssGrowthMb"}: the peak resident memory it took over the start
import { makeModes, wallMs } from "./modes.mjs";
import { exitWithParent } from "./procs.mjs";

exitWithParent();
const [task, modeKey, tablesJson, id, count, extra, many] = process.argv.slice(2);
const { modes, end } = makeModes(process.env.DATABASE_URL);
const mode = /** @type {(typeof modes)[number]} */ (modes.find((m) => m.key === modeKey));
const tables = JSON.parse(tablesJson);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** The streams of a write or tail: `id`, or `streams` streams named after it. */
const streamIds = (streams) =>
  streams === undefined ? [id] : Array.from({ length: Number(streams) }, (_, i) => `${id}-${i}`);

/**
 * This package's store, or the baseline's, which has no stats(), stop() or close().
 * @type {import("../index.js").PostgresStreamStore | (import("./baseline.mjs").BaselineStreamStore & { stats?: undefined, stop?: undefined, close?: undefined })}
 */
let store;
try {
  store = mode.streams(tables, task === "produce" && extra ? JSON.parse(extra) : {});
} catch (err) {
  if (err.code !== "INVALID_OPTION") throw err;
  console.log(JSON.stringify({ unsupported: err.message }));
  await end();
  process.exit(0);
}

/** Reads the stream from the start; `onChunk(chunk)` for each. Resolves what went wrong:
 *  the reader must see seqs 1..expected, each once, in order. */
async function readAll(id, expected, onChunk) {
  const problems = [];
  let next = 1;
  for await (const chunk of store.readFrom(id, 0)) {
    onChunk(chunk);
    if (chunk.seq !== next) problems.push(`${id}: got seq ${chunk.seq} where ${next} was due`);
    next = chunk.seq + 1;
  }
  if (next !== expected + 1) problems.push(`${id}: ended after seq ${next - 1} of ${expected}`);
  return problems;
}

/** Resolves once `n` readers of this store wait for chunks (as its stats tell, with the
 *  Rust pool; a JS client's or the baseline's readers after a pause, in which they have
 *  read once), and its listener, if any, is no longer connecting (at most 5 s). */
async function readersWaiting(n) {
  const deadline = Date.now() + 5_000;
  const stats = () => store.stats?.();
  const rustPool = stats()?.backend === "rust-pool";
  if (!rustPool) await sleep(500);
  for (;;) {
    const s = stats();
    if (!s || ((!rustPool || s.readersWaiting >= n) && s.listener !== "connecting") || Date.now() > deadline) break;
    await sleep(10);
  }
  await sleep(100);
}

if (task === "write") {
  const ids = streamIds(extra);
  /** @type {Record<string, number[]>} */
  const acked = {};
  await Promise.all(
    ids.map(async (stream, s) => {
      const at = (acked[stream] = []);
      await sleep((s * 20) / ids.length);
      for (let i = 0; i < Number(count); i++) {
        at[await store.append(stream, String(wallMs()))] = wallMs();
        await sleep(20);
      }
      await store.complete(stream);
    }),
  );
  console.log(JSON.stringify({ acked }));
} else if (task === "tail") {
  const lags = [];
  let delivered = 0;
  /** @type {Record<string, number[]>} */
  const received = {};
  const readers = streamIds(many).flatMap((stream) =>
    Array.from({ length: Number(extra ?? 1) }, (_, r) => {
      const at = r === 0 ? (received[stream] = []) : [];
      return readAll(stream, Number(count), (chunk) => {
        const now = wallMs();
        lags.push(Math.round((now - Number(chunk.data)) * 100) / 100);
        at[chunk.seq] = now;
        delivered++;
      });
    }),
  );
  await readersWaiting(readers.length);
  console.log("ready");
  const problems = (await Promise.all(readers)).flat();
  console.log(JSON.stringify({ lags, delivered, problems, received }));
} else if (task === "produce") {
  await store.create(id);
  let delivered = 0;
  const reader = readAll(id, Number(count), () => delivered++);
  await readersWaiting(1);
  const start = performance.now();
  for (let i = 0; i < Number(count); i++) await store.append(id, `token ${i} `);
  const seconds = (performance.now() - start) / 1000;
  await store.complete(id);
  const problems = await reader;
  console.log(JSON.stringify({ chunksPerSecond: Math.round(Number(count) / seconds), delivered, problems }));
} else if (task === "produce-only") {
  const start = performance.now();
  for (let i = 0; i < Number(count); i++) await store.append(id, String(wallMs()));
  const seconds = (performance.now() - start) / 1000;
  await store.complete(id);
  console.log(JSON.stringify({ chunksPerSecond: Math.round(Number(count) / seconds) }));
} else if (task === "idle") {
  const readers = Array.from({ length: Number(count) }, (_, i) =>
    store.readFrom(`${id}${i}`, 0)[Symbol.asyncIterator](),
  );
  for (const reader of readers) reader.next();
  await sleep(500);
  console.log("ready");
  await new Promise(() => {}); // until killed
} else if (task === "stopper") {
  // Stops each stream whose id arrives on stdin, one line each.
  const { createInterface } = await import("node:readline");
  console.log("ready");
  for await (const line of createInterface({ input: process.stdin }))
    if (line) await /** @type {import("../index.js").PostgresStreamStore} */ (store).stop(line); // a stopper runs only for a mode with stopSignals (this package's)
} else if (task === "replay") {
  global.gc?.();
  const before = process.resourceUsage().maxRSS;
  let chunks = 0;
  for await (const _ of store.readFrom(id, 0)) chunks++;
  const after = process.resourceUsage().maxRSS;
  console.log(JSON.stringify({ chunks, rssGrowthMb: +((after - before) / 1024).toFixed(1) }));
}
await store.close?.();
await end();
