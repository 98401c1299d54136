// Vercel's resumable-stream (npm `resumable-stream`, over Redis pub/sub) on the live
// workloads of bench.mjs, for comparison: bench.mjs runs it when Redis answers.
//
// How it works (node_modules/resumable-stream/dist/runtime.js): the producer's process
// keeps the stream in memory; it subscribes to a request channel and sets a sentinel key.
// A reader elsewhere (`resumeExistingStream`) subscribes to a channel of its own and
// publishes a request; the producer answers with everything so far in one message, then
// PUBLISHes each further chunk to each reader's channel (awaiting those publishes before
// it reads the next chunk from its source), and finally a DONE message. Nothing is
// durable: if the producer's process dies, the stream is gone. Readers resume by a count
// of characters, not a seq, so here each chunk is a line "<seq>:<wall-clock ms>\n" and
// the readers check that seqs 1..N come once each, in order.
//
// The workloads, as bench.mjs's (one context, i.e. one publisher and one subscriber
// client, per process, as an app server would have):
//   cross-process tail: a producer process emits 100 chunks 20 ms apart, one reader in
//     another process; lag from send (wall clock in the chunk) to receipt;
//   cross-process tail, many streams: the same with `streams` streams emitted at once by
//     one producer process (their schedules 20 ms / streams apart), one reader process
//     resuming each;
//   fan-out: a producer process emits FAN.chunks chunks 20 ms apart; FAN.processes
//     processes of FAN.readersEach readers each; lag, delivered, Redis commands per chunk;
//   one producer process + one live reader in another: the producer's source yields its
//     chunks as fast as they are read; chunks/s, the reader's lag, Redis commands per chunk;
//   one producer + one live reader in one process: the producer's source yields PRODUCED
//     chunks as fast as it is read (the library awaits each chunk's PUBLISH before it
//     reads the next: the counterpart of an awaited append); chunks/s from the first
//     chunk to the library asking for the one after the last; Redis commands per chunk.
// Redis commands are the server's count (INFO stats total_commands_processed) from
// before the first process started to after the last exited, less what reading the
// count itself adds (calibrated on an empty window): every command of the run, the
// clients' connection handshakes included.
//
// As a child process:
//   node resumable-stream.mjs produce <redis url> <prefix> <id> <count> <gap ms> [streams]
//     creates the stream (or streams <id>-0.. <id>-(streams-1)), prints "ready", waits
//     for "go" on stdin, emits the chunks
//   node resumable-stream.mjs tail <redis url> <prefix> <id> <count> <readers> [streams]
//     resumes the stream (each stream) `readers` times, prints "ready" once every reader
//     is attached, reads to the end, prints {"lags", "delivered", "problems"}
//   node resumable-stream.mjs solo <redis url> <prefix> <id> <count>
//     one producer and one reader in this process; prints {"chunksPerSecond", ...}
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { createClient } from "redis";
import { createResumableStreamContext } from "resumable-stream";
import { wallMs } from "./modes.mjs";
import { allResults, exitWithParent, startChild } from "./procs.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const script = fileURLToPath(import.meta.url);

/** A context on its own publisher and subscriber; `end()` waits for the producer's
 *  background work (waitUntil) and closes both clients. */
async function makeContext(redisUrl, keyPrefix) {
  const publisher = createClient({ url: redisUrl });
  const subscriber = createClient({ url: redisUrl });
  await Promise.all([publisher.connect(), subscriber.connect()]);
  const pending = [];
  const ctx = createResumableStreamContext({ keyPrefix, publisher, subscriber, waitUntil: (p) => pending.push(p) });
  return {
    ctx,
    end: async () => {
      await Promise.all(pending);
      await Promise.all([publisher.quit(), subscriber.quit()]);
    },
  };
}

/** A source of `count` chunks "<seq>:<wall ms>\n", the first once `started` resolves,
 *  then `gapMs` apart; `onEnd()` when asked for the one after the last. */
function source(count, gapMs, started, onEnd = () => {}) {
  let seq = 0;
  return new ReadableStream(
    {
      async pull(controller) {
        if (seq === 0) await started;
        if (seq === count) {
          onEnd();
          controller.close();
          return;
        }
        if (seq > 0 && gapMs) await sleep(gapMs);
        seq++;
        controller.enqueue(`${seq}:${wallMs()}\n`);
      },
    },
    { highWaterMark: 0 }, // made when read, as a model's tokens are
  );
}

/** Reads a resumed stream to its end: lags, and seqs 1..expected once each, in order. */
async function readAll(stream, expected, lags) {
  const problems = [];
  let next = 1;
  let delivered = 0;
  let buffered = "";
  for await (const text of stream) {
    const now = wallMs();
    buffered += text;
    const lines = buffered.split("\n");
    buffered = /** @type {string} */ (lines.pop());
    for (const line of lines) {
      const [seq, sent] = line.split(":").map(Number);
      lags.push(Math.round((now - sent) * 100) / 100);
      delivered++;
      if (seq !== next) problems.push(`got seq ${seq} where ${next} was due`);
      next = seq + 1;
    }
  }
  if (buffered) problems.push(`a partial chunk at the end: ${JSON.stringify(buffered)}`);
  if (next !== expected + 1) problems.push(`ended after seq ${next - 1} of ${expected}`);
  return { delivered, problems };
}

async function drain(stream) {
  for await (const _ of stream);
}

async function childMain(/** @type {string[]} */ [task, redisUrl, prefix, id, count, extra, many]) {
  exitWithParent();
  const n = Number(count);
  const ids = many === undefined ? [id] : Array.from({ length: Number(many) }, (_, i) => `${id}-${i}`);
  const { ctx, end } = await makeContext(redisUrl, prefix);
  if (task === "produce") {
    /** @type {(() => void) | undefined} */
    let go;
    /** @type {Promise<void>} */
    const started = new Promise((resolve) => (go = resolve));
    /** @type {number | undefined} */
    let endedAt;
    const gap = Number(extra);
    const outs = await Promise.all(
      ids.map((stream, s) =>
        ctx.createNewResumableStream(stream, () =>
          source(
            n,
            gap,
            started.then(() => sleep((s * gap) / ids.length)),
            () => (endedAt = performance.now()),
          ),
        ),
      ),
    );
    console.log("ready");
    for await (const line of createInterface({ input: process.stdin })) if (line === "go") break;
    process.stdin.destroy(); // else it keeps this process alive
    const start = performance.now();
    /** @type {() => void} */ (go)(); // set by the promise's executor, which has run
    await Promise.all(outs.map(drain)); // as the producers' own responses would be read
    // prettier-ignore
    console.log(JSON.stringify({ chunksPerSecond: Math.round(n / ((/** @type {number} */ (endedAt) - start) / 1000)) }));
  } else if (task === "tail") {
    const streams = await Promise.all(
      ids.flatMap((stream) => Array.from({ length: Number(extra) }, () => ctx.resumeExistingStream(stream))),
    );
    if (!streams.every(Boolean)) throw new Error(`resumeExistingStream gave ${streams.find((s) => !s)}`);
    console.log("ready");
    const lags = [];
    const reads = await Promise.all(streams.map((s) => readAll(s, n, lags)));
    console.log(
      JSON.stringify({
        lags,
        delivered: reads.reduce((a, r) => a + r.delivered, 0),
        problems: reads.flatMap((r) => r.problems),
      }),
    );
  } else if (task === "solo") {
    /** @type {(() => void) | undefined} */
    let go;
    /** @type {Promise<void>} */
    const started = new Promise((resolve) => (go = resolve));
    /** @type {number | undefined} */
    let endedAt;
    const out = await ctx.createNewResumableStream(id, () =>
      source(n, 0, started, () => (endedAt = performance.now())),
    );
    const reader = await ctx.resumeExistingStream(id);
    const lags = [];
    const reading = readAll(reader, n, lags);
    const producing = drain(out);
    const start = performance.now();
    /** @type {() => void} */ (go)(); // set by the promise's executor, which has run
    await producing;
    const { delivered, problems } = await reading;
    console.log(
      JSON.stringify({
        // prettier-ignore
        chunksPerSecond: Math.round(n / ((/** @type {number} */ (endedAt) - start) / 1000)),
        delivered,
        problems,
      }),
    );
  } else {
    throw new Error(`unknown task ${task}`);
  }
  await end();
}

// ---------------------------------------------------------------------- the parent side

/** true if Redis answers a PING at `redisUrl` within a second, else why not. */
export async function redisAnswers(redisUrl) {
  const client = createClient({ url: redisUrl, socket: { connectTimeout: 1000, reconnectStrategy: false } });
  client.on("error", () => {});
  let timer;
  try {
    const late = new Promise(
      (_, reject) => (timer = setTimeout(() => reject(new Error("no answer within 1.5 s")), 1500)),
    );
    await Promise.race([client.connect().then(() => client.ping()), late]);
    return true;
  } catch (err) {
    return `Redis at ${redisUrl}: ${err.message}`;
  } finally {
    clearTimeout(timer);
    await client.disconnect().catch(() => {});
  }
}

const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const round2 = (x) => +x.toFixed(2);

/**
 * Runs the workloads (those named in `only`, if given: crossTail, crossTailMany, fanOut,
 * elsewhere, oneProducer) `rounds` times each; resolves the median round of each (by p50
 * lag, by chunks/s) with the version of resumable-stream and of Redis. Fails if a child
 * fails; leaves no key behind (they are under a prefix of this run).
 */
export async function measureResumableStream({ redisUrl, fan, produced, elsewhere, streams: many, rounds = 3, only }) {
  const wanted = (/** @type {string} */ workload) => !only || only.includes(workload);
  // Its package.json is not among its exports: found next to its entry (dist/index.js).
  const entry = createRequire(import.meta.url).resolve("resumable-stream");
  const { version } = JSON.parse(readFileSync(new URL("../package.json", pathToFileURL(entry)), "utf8"));
  const admin = createClient({ url: redisUrl });
  await admin.connect();
  const prefix = `aibind-bench-${process.pid}`;
  let streams = 0;
  const commands = async () =>
    Number(/** @type {RegExpExecArray} */ (/total_commands_processed:(\d+)/.exec(await admin.info("stats")))[1]);
  // What reading the count adds to it, from an empty window.
  const a = await commands();
  const overhead = (await commands()) - a;
  const counted = async (work) => {
    const before = await commands();
    const result = await work();
    return { result, commands: (await commands()) - before - overhead };
  };
  const start = (args) =>
    startChild(script, [args[0], redisUrl, prefix, ...args.slice(1)], {
      timeoutMs: 120_000,
      name: `resumable-stream ${args[0]}`,
    });

  /** A producer process (chunks `gap` ms apart) and `processes` reader processes; given
   *  `many`, that many streams at once, each read by `readersEach` readers per process. */
  async function live(chunks, processes, readersEach, gap = 20, many = undefined) {
    const id = `s${streams++}`;
    const more = many === undefined ? [] : [String(many)];
    const producer = start(["produce", id, String(chunks), String(gap), ...more]);
    const all = [producer];
    try {
      await producer.waitFor("ready");
      for (let i = 0; i < processes; i++) all.push(start(["tail", id, String(chunks), String(readersEach), ...more]));
      await Promise.all(all.slice(1).map((c) => c.waitFor("ready")));
    } catch (err) {
      for (const c of all) c.kill();
      throw err;
    }
    producer.send("go");
    const [made, ...tails] = await allResults(all);
    const lags = tails.flatMap((t) => t.lags);
    return {
      chunksPerSecond: made?.chunksPerSecond,
      p50Ms: round2(quantile(lags, 0.5)),
      p99Ms: round2(quantile(lags, 0.99)),
      delivered: tails.reduce((n, t) => n + t.delivered, 0),
      expected: chunks * processes * readersEach * (many ?? 1),
      problems: tails.flatMap((t) => t.problems),
    };
  }

  /** @type {Record<"crossTail" | "crossTailMany" | "fanOut" | "oneProducer" | "elsewhere", Record<string, any>[]>} */
  const runs = { crossTail: [], crossTailMany: [], fanOut: [], oneProducer: [], elsewhere: [] };
  let redisVersion;
  try {
    for (let round = 0; round < rounds; round++) {
      if (wanted("crossTail")) runs.crossTail.push(await live(100, 1, 1));
      if (wanted("crossTailMany")) runs.crossTailMany.push(await live(100, 1, 1, 20, many));
      if (wanted("fanOut")) {
        const f = await counted(() => live(fan.chunks, fan.processes, fan.readersEach));
        runs.fanOut.push({
          ...f.result,
          redisCommandsPerChunk: round2(f.commands / fan.chunks),
          redisCommands: f.commands,
        });
      }
      if (wanted("elsewhere")) {
        const e = await counted(() => live(elsewhere, 1, 1, 0));
        runs.elsewhere.push({ ...e.result, redisCommandsPerChunk: round2(e.commands / elsewhere) });
      }
      if (wanted("oneProducer")) {
        const s = await counted(() => start(["solo", `s${streams++}`, String(produced)]).result());
        runs.oneProducer.push({
          ...s.result,
          redisCommandsPerChunk: round2(s.commands / produced),
          redisCommands: s.commands,
        });
      }
    }
  } finally {
    for await (const keys of admin.scanIterator({ MATCH: `${prefix}:*`, COUNT: 1000 })) {
      for (const key of [keys].flat()) await admin.del(key);
    }
    redisVersion = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1];
    await admin.quit();
  }
  const problems = Object.entries(runs).flatMap(([what, rs]) =>
    rs.flatMap((r) => (r.problems ?? []).map((p) => `${what}: ${p}`)),
  );
  const mid = (rs, value) => [...rs].sort((x, y) => value(x) - value(y))[Math.floor(rs.length / 2)];
  const strip = ({ problems: p, ...r }) => ({ ...r, problems: p.length });
  // The median round of a workload run, none if it was not.
  const median = (rs, value) => (rs.length ? strip(mid(rs, value)) : undefined);
  return {
    version,
    redis: redisVersion,
    rounds,
    problems,
    figures: {
      crossTail: median(runs.crossTail, (r) => r.p50Ms),
      crossTailMany: median(runs.crossTailMany, (r) => r.p50Ms),
      fanOut: runs.fanOut.length
        ? {
            ...strip(mid(runs.fanOut, (r) => r.p50Ms)),
            delivered: Math.min(...runs.fanOut.map((r) => r.delivered)),
          }
        : undefined,
      oneProducer: median(runs.oneProducer, (r) => -r.chunksPerSecond),
      elsewhere: median(runs.elsewhere, (r) => -r.chunksPerSecond),
    },
  };
}

if (process.argv[1] === script) {
  await childMain(process.argv.slice(2));
}
