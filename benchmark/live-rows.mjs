// The rows of live readers: tails in one process and across processes, the fan-out, stop
// signals, and one producer with a live reader (issue 10).
import { allResults } from "./procs.mjs";
import {
  activeStream,
  admin,
  child,
  countedPlace,
  freshTables,
  guard,
  median,
  noteProblems,
  perChunk,
  quantile,
  round2,
  sleep,
  nextStream,
  within,
} from "./context.mjs";

/** One writer appends 100 chunks 20 ms apart; a live reader notes when each arrives. */
export async function liveTail(mode) {
  const t = await freshTables();
  const store = mode.streams(t);
  const id = "tail";
  await store.create(id);
  const sentAt = new Map();
  const lags = [];
  const reader = (async () => {
    for await (const chunk of store.readFrom(id, 0)) lags.push(performance.now() - sentAt.get(chunk.seq));
  })();
  for (let i = 1; i <= 100; i++) {
    sentAt.set(i, performance.now());
    await store.append(id, `token ${i} `);
    await sleep(20);
  }
  await store.complete(id);
  await reader;
  await store.close?.();
  await t.drop();
  return { p50Ms: +median(lags).toFixed(2), p99Ms: +quantile(lags, 0.99).toFixed(2) };
}

/**
 * stop() in another process → the producer's stopSignal here aborts: 30 streams, one at
 * a time, the stop sent to a child process over a pipe. (The original has no stop signal:
 * its producer hears of a stop at its next append.)
 */
export async function stopAcross(mode) {
  if (!mode.stopSignals) return undefined;
  const t = await freshTables();
  const store = mode.streams(t);
  const stopper = child(["stopper", mode.key, JSON.stringify(t), "-", "0"]);
  const ended = stopper.result().then(() => {
    throw new Error("the stopper process ended early");
  });
  ended.catch(() => {});
  await guard([stopper], Promise.race([stopper.waitFor("ready"), ended]));
  const lags = [];
  for (let i = 0; i < 30; i++) {
    const id = `stop${i}`;
    await store.create(id);
    const signal = store.stopSignal(id);
    await store.append(id, "token");
    await sleep(50); // the producer waits for its model
    const aborted = new Promise((resolve) =>
      signal.addEventListener("abort", () => resolve(performance.now()), { once: true }),
    );
    const sent = performance.now();
    stopper.send(id);
    lags.push((await guard([stopper], within(10_000, `stop ${id}: the abort`, Promise.race([aborted, ended])))) - sent);
  }
  stopper.proc.stdin.end();
  await stopper.result();
  await store.close?.();
  await t.drop();
  return { p50Ms: +median(lags).toFixed(2), p99Ms: +quantile(lags, 0.99).toFixed(2) };
}

/** A writer in another process (its own store, same mode) appends 100 chunks 20 ms
 *  apart, each carrying the wall-clock time it was sent; a live reader in a third process
 *  (same mode) notes the lag. Both are child processes that run only their mode, so a JS
 *  client's reader is not woken by the Rust pool (and its LISTEN connection) that the
 *  benchmark's own process keeps for the native mode: in-process wake-ups reach every
 *  store of a process, whatever its backend. Given `streams`, the writer writes that many
 *  streams at once (each a chunk every 20 ms, their schedules 20 ms / streams apart) and
 *  the reader process tails each of them (a readFrom per stream).
 *  @param {import("./bench.mjs").Mode} mode
 *  @param {number} [streams] */
export async function liveTailAcross(mode, streams) {
  const t = await freshTables();
  const id = "tail-across";
  const ids = streams === undefined ? [id] : Array.from({ length: streams }, (_, i) => `${id}-${i}`);
  for (const stream of ids)
    await admin.query(
      `INSERT INTO ${t.stream.statusTable} (id, state, total_chunks, expires_at) VALUES ($1, 'active', 0, $2)`,
      [stream, Date.now() + 1e8],
    );
  const many = streams === undefined ? [] : ["1", String(streams)];
  const reader = child(["tail", mode.key, JSON.stringify(t), id, "100", ...many]);
  await guard([reader], reader.waitFor("ready")); // the reader is waiting (and, with LISTEN, listening)
  const writer = child(["write", mode.key, JSON.stringify(t), id, "100", ...many.slice(1)]);
  const [written, read] = await allResults([writer, reader]);
  noteProblems(`live tail, across processes${streams ? `, ${streams} streams` : ""}`, mode, read.problems);
  if (read.delivered !== 100 * ids.length) throw new Error(`the reader got ${read.delivered} chunks`);
  await t.drop();
  // From the append's promise resolving in the writer to the reader's receipt (negative:
  // the reader had it first).
  const fromAck = ids.flatMap((s) =>
    written.acked[s].flatMap((acked, seq) => (acked ? [read.received[s][seq] - acked] : [])),
  );
  return {
    p50Ms: round2(median(read.lags)),
    p99Ms: round2(quantile(read.lags, 0.99)),
    fromAckP50Ms: round2(median(fromAck)),
    fromAckP99Ms: round2(quantile(fromAck, 0.99)),
  };
}

export const ACROSS_STREAMS = 10;
/** liveTailAcross with ACROSS_STREAMS streams written at once by one process, tailed by
 *  another. */
export const liveTailAcrossMany = (mode) => liveTailAcross(mode, ACROSS_STREAMS);

export const FAN = { processes: 2, readersEach: 50, chunks: 200 };
export const FAN_READERS = FAN.processes * FAN.readersEach;

/** One fan-out run: `readers` ? FAN.processes child processes of FAN.readersEach live
 *  readers each : none; then a writer process appends `chunks` chunks 20 ms apart (each
 *  carrying its wall-clock send time) and completes the stream. Resolves the readers'
 *  results and the transactions counted from before the first child started to after the
 *  last one's backends were gone. */
export async function fanOutRun(mode, place, { readers, chunks }) {
  const id = await activeStream(place, `fan-${mode.key}`);
  const tables = JSON.stringify(place.tables);
  return place.count(async () => {
    const tails = Array.from({ length: readers ? FAN.processes : 0 }, () =>
      child(["tail", mode.key, tables, id, String(chunks), String(FAN.readersEach)], { db: place.url }),
    );
    await guard(tails, Promise.all(tails.map((c) => c.waitFor("ready"))));
    const writer = child(["write", mode.key, tables, id, String(chunks)], { db: place.url });
    const [, ...results] = await allResults([writer, ...tails]);
    return results;
  });
}

/**
 * Fan-out: FAN_READERS live readers of ONE stream, in FAN.processes processes, while a
 * writer in a third process appends FAN.chunks chunks 20 ms apart and completes it.
 * Lag: from the writer's send (wall clock, in the chunk) to each reader's receipt, over
 * every reader's every chunk. Each reader must see seqs 1..N in order, once each.
 *
 * The readers' database transactions are measured as the server counts them, in the
 * counted database (counted.mjs), by difference:
 *   A = writer + readers,  B = the same writer alone,  C = readers of a stream that gets
 *   no chunk (started, waiting, then the stream completes),  D = that writer alone;
 *   readers' transactions per chunk = (A - B) / N: everything the readers cost, their
 *   start (connections, first read, LISTEN) included;
 *   of which their start, per reader = (C - D) / readers, and the rest, per chunk =
 *   ((A - B) - (C - D)) / N: what following the stream cost beyond that.
 * All four runs go through the same child processes and statements, so what the writer,
 * the processes' start and the count itself cost cancels out. A noisy run can make a
 * difference a few transactions off (never the order of magnitude). A reader process's
 * LISTEN connection counts one transaction each time it takes in a notification (see
 * counted.mjs): part of the readers' share. (To see which statements make a count, set
 * log_statement = 'all' on the counted database and read the server's log.)
 */
export async function fanOut(mode) {
  const place = await countedPlace();
  const a = await fanOutRun(mode, place, { readers: true, chunks: FAN.chunks });
  const b = await fanOutRun(mode, place, { readers: false, chunks: FAN.chunks });
  const c = await fanOutRun(mode, place, { readers: true, chunks: 0 });
  const d = await fanOutRun(mode, place, { readers: false, chunks: 0 });
  await place.done();
  const lags = a.result.flatMap((r) => r.lags);
  const found = [...a.result, ...c.result].flatMap((r) => r.problems);
  noteProblems("fan-out", mode, found);
  const counts = a.transactions !== null;
  const readers = counts ? a.transactions - b.transactions : null;
  const start = counts ? c.transactions - d.transactions : null;
  return {
    p50Ms: round2(median(lags)),
    p99Ms: round2(quantile(lags, 0.99)),
    delivered: a.result.reduce((n, r) => n + r.delivered, 0),
    expected: FAN_READERS * FAN.chunks,
    problems: found.length,
    readersTransactionsPerChunk: perChunk(readers, FAN.chunks),
    // prettier-ignore
    readersStartTransactionsPerReader: counts ? +(/** @type {number} */ (start) / FAN_READERS).toFixed(2) : null,
    readersFollowTransactionsPerChunk: perChunk(
      counts ? /** @type {number} */ (readers) - /** @type {number} */ (start) : null,
      FAN.chunks,
    ),
    allTransactionsPerChunk: perChunk(a.transactions, FAN.chunks),
    writerTransactionsPerChunk: perChunk(b.transactions, FAN.chunks),
    transactions: {
      withReaders: a.transactions,
      writerAlone: b.transactions,
      readersNoChunks: c.transactions,
      writerNoChunks: d.transactions,
    },
  };
}

/** 20 streams written at once, in this process: a writer per stream appends 100 chunks
 *  20 ms apart, all concurrently; one live reader per stream, here too. */
export async function liveTailMany(mode) {
  const t = await freshTables();
  const store = mode.streams(t);
  const ids = Array.from({ length: 20 }, (_, i) => `many${i}`);
  for (const id of ids) await store.create(id);
  /** @type {Map<string, number[]>} */
  const sentAt = new Map(ids.map((id) => [id, []]));
  const lags = [];
  const found = [];
  const readers = ids.map(async (id) => {
    let next = 1;
    for await (const chunk of store.readFrom(id, 0)) {
      lags.push(performance.now() - /** @type {number[]} */ (sentAt.get(id))[chunk.seq]);
      if (chunk.seq !== next) found.push(`${id}: got seq ${chunk.seq} where ${next} was due`);
      next = chunk.seq + 1;
    }
    if (next !== 101) found.push(`${id}: ended after seq ${next - 1} of 100`);
  });
  await sleep(300); // the readers are waiting
  await Promise.all(
    ids.map(async (id) => {
      for (let i = 1; i <= 100; i++) {
        /** @type {number[]} */ (sentAt.get(id))[i] = performance.now();
        await store.append(id, `token ${i} `);
        await sleep(20);
      }
      await store.complete(id);
    }),
  );
  await Promise.all(readers);
  noteProblems("live tail, 20 streams", mode, found);
  await store.close?.();
  await t.drop();
  return { p50Ms: round2(median(lags)), p99Ms: round2(quantile(lags, 0.99)), delivered: lags.length };
}

/** Whether the mode's store takes these options: unknown options are ignored (as by the
 *  original), so an option counts as taken only if a value of the wrong type is refused
 *  and the given value is not (INVALID_OPTION). The baseline is given relaxed durability
 *  by its pool (modes.mjs). */
export async function takesOptions(mode, options) {
  if (mode.key === "baseline") return true;
  const tables = { stream: { chunksTable: "probe_chunks", statusTable: "probe_status" } };
  const wrongType = Object.fromEntries(
    Object.entries(options).map(([k, v]) => [k, typeof v === "string" ? 0 : "not a boolean"]),
  );
  try {
    await mode.streams(tables, wrongType).close?.();
    return false; // not known: ignored
  } catch {}
  try {
    await mode.streams(tables, options).close?.();
    return true;
  } catch (err) {
    if (err.code === "INVALID_OPTION") return false;
    throw err;
  }
}

export const PRODUCED = 1000;
/**
 * One producer, as DurableStream does, with one live reader in its process (child.mjs
 * produce): PRODUCED appends to one stream, each awaited; chunks/s over the appends, and
 * every database transaction of that process per chunk, as the server counts them (the
 * process's connections, create, the reader's reads, NOTIFYs, complete included).
 */
export function oneProducerWithReader(options) {
  return async (mode) => {
    if (options && !(await takesOptions(mode, options))) return { unsupported: "option not taken" };
    const place = await countedPlace();
    const id = `prod-${mode.key}-${nextStream()}`; // the child creates it
    const args = [
      "produce",
      mode.key,
      JSON.stringify(place.tables),
      id,
      String(PRODUCED),
      ...(options ? [JSON.stringify(options)] : []),
    ];
    const { result, transactions } = await place.count(() => child(args, { db: place.url }).result());
    await place.done();
    if (result.unsupported) return result;
    noteProblems("one producer + reader", mode, result.problems);
    return {
      chunksPerSecond: result.chunksPerSecond,
      delivered: result.delivered,
      transactionsPerChunk: perChunk(transactions, PRODUCED),
      transactions,
    };
  };
}

export const PRODUCED_ELSEWHERE = 5000;
/**
 * One producer process, as DurableStream does (each append awaited), and one live reader
 * in another process (issue: a single fast writer at the commit rate): chunks/s over the
 * appends, the reader's lag from each chunk's send to its receipt, and every database
 * transaction of both processes per chunk, as the server counts them.
 */
export async function oneProducerReaderElsewhere(mode) {
  const place = await countedPlace();
  const id = await activeStream(place, `solo-${mode.key}`);
  const tables = JSON.stringify(place.tables);
  const n = String(PRODUCED_ELSEWHERE);
  const { result, transactions } = await place.count(async () => {
    const reader = child(["tail", mode.key, tables, id, n], { db: place.url });
    await guard([reader], reader.waitFor("ready"));
    const producer = child(["produce-only", mode.key, tables, id, n], { db: place.url });
    const [made, read] = await allResults([producer, reader]);
    return { ...made, read };
  });
  await place.done();
  noteProblems("one producer + a reader elsewhere", mode, result.read.problems);
  return {
    chunksPerSecond: result.chunksPerSecond,
    p50Ms: round2(median(result.read.lags)),
    delivered: result.read.delivered,
    transactionsPerChunk: perChunk(transactions, PRODUCED_ELSEWHERE),
  };
}
