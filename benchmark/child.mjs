// A second process for the benchmark, with a store of its own in the given mode.
//   node child.mjs write <mode> <tables JSON> <id> <count>   appends `count` chunks 20 ms
//     apart (each chunk is the wall-clock time it was sent), then completes the stream
//   node child.mjs idle <mode> <tables JSON> <id prefix> <count>   opens a reader on each
//     of `count` streams, prints "ready" and waits until it is killed
//   node child.mjs stopper <mode> <tables JSON> - 0    stops each stream whose id comes on
//     stdin (a line each), after printing "ready"
//   node child.mjs replay <mode> <tables JSON> <id>           reads the stream through and
//     prints {"chunks", "rssGrowthMb"}: the peak resident memory it took over the start
import { makeModes, wallMs } from "./modes.mjs";

const [task, modeKey, tablesJson, id, count] = process.argv.slice(2);
const { modes, end } = makeModes(process.env.DATABASE_URL);
const mode = modes.find((m) => m.key === modeKey);
const tables = JSON.parse(tablesJson);
const store = mode.streams(tables);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

if (task === "write") {
  for (let i = 0; i < Number(count); i++) {
    await store.append(id, String(wallMs()));
    await sleep(20);
  }
  await store.complete(id);
} else if (task === "idle") {
  const readers = Array.from({ length: Number(count) }, (_, i) => store.readFrom(`${id}${i}`, 0)[Symbol.asyncIterator]());
  for (const reader of readers) reader.next();
  await sleep(500);
  console.log("ready");
  await new Promise(() => {}); // until killed
} else if (task === "stopper") {
  // Stops each stream whose id arrives on stdin, one line each.
  const { createInterface } = await import("node:readline");
  console.log("ready");
  for await (const line of createInterface({ input: process.stdin })) if (line) await store.stop(line);
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
