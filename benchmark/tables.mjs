// What bench.mjs prints: its figures' labels, its tables, and the side-by-side with
// Vercel's resumable-stream (benchmark/resumable-stream.mjs), measured when Redis answers
// (REDIS_URL, default redis://127.0.0.1:6379).
import { modes, only, problems } from "./context.mjs";
import { ACROSS_STREAMS, FAN, FAN_READERS, PRODUCED, PRODUCED_ELSEWHERE } from "./live-rows.mjs";

export const lag = (r) => `p50 ${r.p50Ms} / p99 ${r.p99Ms} ms`;
/** The lag from the send, and (where measured) from the append's promise resolving. */
export const lagAndFromAck = (r) =>
  r.fromAckP50Ms === undefined ? lag(r) : `${lag(r)}; from the ack p50 ${r.fromAckP50Ms} / p99 ${r.fromAckP99Ms} ms`;
export const FAN_LABEL = `fan-out: ${FAN_READERS} readers of one stream in ${FAN.processes} processes, ${FAN.chunks} chunks 20 ms apart: lag`;
export const FAN_DELIVERED = "fan-out: chunks delivered, each reader all in order";
export const FAN_READERS_XACT = "fan-out: readers' database transactions per chunk";
export const FAN_ALL_XACT = "fan-out: all database transactions per chunk (writer + readers)";
export const PRODUCER_LABEL = `one producer + one live reader (same process), ${PRODUCED.toLocaleString("en")} awaited appends`;
export const PRODUCER_XACT = `${PRODUCER_LABEL}: database transactions per chunk`;
export const ACROSS_LABEL = "live tail, across processes";
export const ACROSS_MANY_LABEL = `cross-process tail, ${ACROSS_STREAMS} streams 20 ms apart`;
export const SOLO_LABEL = `one producer process + one live reader in another, ${PRODUCED_ELSEWHERE.toLocaleString("en")} awaited appends`;
export const RS_LABEL = "resumable-stream (Redis pub/sub)";

/** resumable-stream's workloads, each by the label of this package's row it matches. */
const rsWorkloads = {
  crossTail: ACROSS_LABEL,
  crossTailMany: ACROSS_MANY_LABEL,
  fanOut: FAN_LABEL,
  elsewhere: SOLO_LABEL,
  oneProducer: PRODUCER_LABEL,
};

/**
 * Runs resumable-stream's workloads (under BENCH_ONLY, those whose rows are selected,
 * or all if its own label is) when Redis answers; resolves what it measured (also put in
 * `results.resumableStream`), or undefined.
 * @param {Record<string, any>} results
 * @param {(label: string) => boolean} selected
 */
export async function measureSideBySide(results, selected) {
  const wanted = selected(RS_LABEL)
    ? undefined
    : Object.keys(rsWorkloads).filter((k) => rsWorkloads[k].includes(only ?? ""));
  if (wanted && !wanted.length) return undefined;
  const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  const module = await import("./resumable-stream.mjs").catch((err) => err);
  const why = module instanceof Error ? `cannot load it: ${module.message}` : await module.redisAnswers(redisUrl);
  if (why !== true) {
    console.error(`${RS_LABEL}: not measured (${why})`);
    return undefined;
  }
  const rs = await module.measureResumableStream({
    redisUrl,
    fan: FAN,
    produced: PRODUCED,
    elsewhere: PRODUCED_ELSEWHERE,
    streams: ACROSS_STREAMS,
    rounds: 3,
    only: wanted,
  });
  results.resumableStream = rs;
  if (rs.problems.length)
    problems.push(`${RS_LABEL}: ${rs.problems.length} problem(s), e.g. ${rs.problems.slice(0, 3).join("; ")}`);
  console.error(`measured: ${RS_LABEL}`);
  return rs;
}

/**
 * Prints resumable-stream's figures, each row beside this package's figure for the same
 * workload (when measured in this run).
 * @param {Record<string, any>} rs
 * @param {Record<string, any>} results
 */
export function printSideBySide(rs, results) {
  const ours = (label, show) =>
    Object.fromEntries(
      modes.map((m) => {
        const r = results.figures[label]?.[m.key];
        return [m.key, r && !r.unsupported ? show(r) : "-"];
      }),
    );
  const f = rs.figures;
  // Each row: [the workload it shows, figure, resumable-stream's cell, ours].
  /** @type {[string, string, (w: Record<string, any>) => string, Record<string, string>][]} */
  const rows = [
    ["crossTail", ACROSS_LABEL, lag, ours(ACROSS_LABEL, lag)],
    ["crossTailMany", ACROSS_MANY_LABEL, lag, ours(ACROSS_MANY_LABEL, lagAndFromAck)],
    ["fanOut", FAN_LABEL, lag, ours(FAN_LABEL, lag)],
    [
      "fanOut",
      FAN_DELIVERED,
      (w) => `${w.delivered}/${w.expected}`,
      ours(FAN_DELIVERED, (r) => `${r.delivered}/${r.expected}`),
    ],
    [
      "fanOut",
      "fan-out: server operations per chunk, all (Redis commands; PG transactions)",
      (w) => `${w.redisCommandsPerChunk}`,
      ours(FAN_ALL_XACT, (r) => `${r.allTransactionsPerChunk ?? "n/a"}`),
    ],
    [
      "elsewhere",
      `${SOLO_LABEL}: chunks/s`,
      (w) => `${w.chunksPerSecond} chunks/s`,
      ours(SOLO_LABEL, (r) => `${r.chunksPerSecond} chunks/s`),
    ],
    [
      "elsewhere",
      `${SOLO_LABEL}: the reader's lag p50`,
      (w) => `${w.p50Ms} ms`,
      ours(SOLO_LABEL, (r) => `${r.p50Ms} ms`),
    ],
    [
      "elsewhere",
      `${SOLO_LABEL}: server operations per chunk (Redis commands; PG transactions)`,
      (w) => `${w.redisCommandsPerChunk}`,
      ours(SOLO_LABEL, (r) => `${r.transactionsPerChunk ?? "n/a"}`),
    ],
    [
      "oneProducer",
      `one producer + one live reader (same process), ${PRODUCED.toLocaleString("en")} chunks: chunks/s`,
      (w) => `${w.chunksPerSecond} chunks/s`,
      ours(PRODUCER_LABEL, (r) => `${r.chunksPerSecond} chunks/s`),
    ],
    [
      "oneProducer",
      "one producer + one live reader: server operations per chunk (as above)",
      (w) => `${w.redisCommandsPerChunk}`,
      ours(PRODUCER_XACT, (r) => `${r.transactionsPerChunk ?? "n/a"}`),
    ],
  ];
  const table = rows
    .filter(([workload]) => f[workload])
    .map(([workload, figure, cell, mine]) => ({ figure, rs: cell(f[workload]), ...mine }));
  console.log(
    `\n${RS_LABEL} ${rs.version} on Redis ${rs.redis}, the same workloads (median of ${rs.rounds} rounds). It keeps a`,
  );
  console.log("stream in its producer's memory (nothing durable; gone if that process dies) and sends each");
  console.log("chunk to each reader with a PUBLISH of its own; readers cannot start from a seq.\n");
  printTable(
    ["figure", `resumable-stream ${rs.version}`, ...modes.map((m) => m.name)],
    ["figure", "rs", ...modes.map((m) => m.key)],
    table,
  );
}

/** Prints `rows` as a Markdown table: `titles` over the columns `headers` name. */
export function printTable(titles, headers, rows) {
  const widths = headers.map((h, i) => Math.max(titles[i].length, ...rows.map((r) => String(r[h]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(" | ")} |`;
  console.log(line(titles));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const row of rows) console.log(line(headers.map((h) => row[h])));
}
