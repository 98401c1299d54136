// `npm run bench`: this package (Rust pool, and over a pg.Pool) against the original's
// algorithm over pg (benchmark/baseline.mjs), in one run against one PostgreSQL. Prints a
// table and writes benchmark/results.json. Child processes (benchmark/child.mjs) play the
// other processes: writers and readers across processes, the fan-out's readers, the
// producers whose database transactions are counted, the replay whose memory is measured.
// When Redis answers (REDIS_URL, default redis://127.0.0.1:6379), Vercel's
// resumable-stream runs the same live workloads (benchmark/resumable-stream.mjs) and a
// second table compares it (benchmark/tables.mjs).
//
//   BENCH_ONLY=<part of a figure's label> node benchmark/bench.mjs   runs just those rows
import { writeFileSync } from "node:fs";
import os from "node:os";
import { admin, cleanUp, modes, only, problems, url } from "./context.mjs";
import {
  appendThroughput,
  cleanup,
  conversations,
  idleLoad,
  oneProducer,
  replay,
  replayMemory,
} from "./store-rows.mjs";
import {
  fanOut,
  liveTail,
  liveTailAcross,
  liveTailAcrossMany,
  liveTailMany,
  oneProducerReaderElsewhere,
  oneProducerWithReader,
  stopAcross,
} from "./live-rows.mjs";
import {
  ACROSS_LABEL,
  ACROSS_MANY_LABEL,
  FAN_ALL_XACT,
  FAN_DELIVERED,
  FAN_LABEL,
  FAN_READERS_XACT,
  PRODUCER_LABEL,
  PRODUCER_XACT,
  SOLO_LABEL,
  lag,
  lagAndFromAck,
  measureSideBySide,
  printSideBySide,
  printTable,
} from "./tables.mjs";

/**
 * @typedef {ReturnType<typeof import("./modes.mjs").makeModes>["modes"][number]} Mode
 * @typedef {Record<string, any>} Result what a measure resolves for a mode (one round)
 * @typedef {{ label: string, show: (r: Result) => string, value: (r: Result) => any, higherIsBetter: boolean, worst?: boolean, noRatio?: boolean }} Metric
 */

// [label, measure, show, value, higher is better, rounds, more rows from the same rounds]
// A further row is { label, show, value, higherIsBetter, worst }: it shows the median
// round by its own value (the worst round if `worst`); a null value has no ratio.
/** @type {[label: string, measure: (mode: Mode) => Promise<Result>, show: Metric["show"], value: Metric["value"], higherIsBetter: boolean, rounds: number, more?: Metric[]][]} */
const figures = [
  [
    "append throughput (50 streams x 200 appends)",
    appendThroughput,
    (r) => `${r.chunksPerSecond} chunks/s`,
    (r) => r.chunksPerSecond,
    true,
    3,
  ],
  [
    "one producer, 1,000 awaited appends to one stream",
    oneProducer,
    (r) => `${r.chunksPerSecond} chunks/s`,
    (r) => r.chunksPerSecond,
    true,
    5,
  ],
  ["live tail, same process", liveTail, lag, (r) => r.p50Ms, false, 3],
  [ACROSS_LABEL, liveTailAcross, lag, (r) => r.p50Ms, false, 3],
  [ACROSS_MANY_LABEL, liveTailAcrossMany, lagAndFromAck, (r) => r.p50Ms, false, 3],
  ["live tail, same process, 20 streams written at once", liveTailMany, lag, (r) => r.p50Ms, false, 3],
  [
    FAN_LABEL,
    fanOut,
    lag,
    (r) => r.p50Ms,
    false,
    3,
    [
      {
        label: FAN_DELIVERED,
        show: (r) => `${r.delivered}/${r.expected}`,
        value: (r) => r.delivered,
        higherIsBetter: true,
        worst: true,
        noRatio: true,
      },
      {
        label: FAN_READERS_XACT,
        show: (r) =>
          r.readersTransactionsPerChunk === null
            ? "n/a (not counted)"
            : `${r.readersTransactionsPerChunk} (start ${r.readersStartTransactionsPerReader}/reader, then ${r.readersFollowTransactionsPerChunk}/chunk)`,
        value: (r) => r.readersTransactionsPerChunk,
        higherIsBetter: false,
      },
      {
        label: FAN_ALL_XACT,
        show: (r) => (r.allTransactionsPerChunk === null ? "n/a (not counted)" : `${r.allTransactionsPerChunk}`),
        value: (r) => r.allTransactionsPerChunk,
        higherIsBetter: false,
      },
    ],
  ],
  [
    PRODUCER_LABEL,
    oneProducerWithReader(),
    (r) => `${r.chunksPerSecond} chunks/s`,
    (r) => r.chunksPerSecond,
    true,
    5,
    [
      {
        label: PRODUCER_XACT,
        show: (r) => `${r.transactionsPerChunk ?? "n/a (not counted)"}`,
        value: (r) => r.transactionsPerChunk,
        higherIsBetter: false,
      },
    ],
  ],
  [
    `${PRODUCER_LABEL}, synchronousCommit: false`,
    oneProducerWithReader({ synchronousCommit: false }),
    (r) => `${r.chunksPerSecond} chunks/s`,
    (r) => r.chunksPerSecond,
    true,
    5,
    [
      {
        label: `${PRODUCER_LABEL}, synchronousCommit: false: database transactions per chunk`,
        show: (r) => `${r.transactionsPerChunk ?? "n/a (not counted)"}`,
        value: (r) => r.transactionsPerChunk,
        higherIsBetter: false,
      },
    ],
  ],
  [
    SOLO_LABEL,
    oneProducerReaderElsewhere,
    (r) => `${r.chunksPerSecond} chunks/s`,
    (r) => r.chunksPerSecond,
    true,
    3,
    [
      {
        label: `${SOLO_LABEL}: database transactions per chunk`,
        show: (r) => `${r.transactionsPerChunk ?? "n/a (not counted)"}`,
        value: (r) => r.transactionsPerChunk,
        higherIsBetter: false,
      },
      {
        label: `${SOLO_LABEL}: the reader's lag p50`,
        show: (r) => `${r.p50Ms} ms`,
        value: (r) => r.p50Ms,
        higherIsBetter: false,
      },
    ],
  ],
  ["replay 10,000 chunks", replay, (r) => `${r.medianMs} ms`, (r) => r.medianMs, false, 5],
  ["cleanup 2,000 streams", cleanup, (r) => `${r.medianMs} ms`, (r) => r.medianMs, false, 5],
  [
    "conversation save+load (10 at once)",
    conversations,
    (r) => `${r.pairsPerSecond} pairs/s`,
    (r) => r.pairsPerSecond,
    true,
    5,
  ],
  [
    "replay 1,000,000 chunks: peak RSS growth",
    replayMemory,
    (r) => `${r.rssGrowthMb} MB`,
    (r) => Math.max(r.rssGrowthMb, 0.1),
    false,
    1,
  ],
  [
    "idle load, 50 waiting readers",
    idleLoad,
    (r) => `${r.statementsPerSecond} stmt/s`,
    (r) => Math.max(r.statementsPerSecond, 0.1),
    false,
    1,
  ],
];

const selected = (label) => !only || label.includes(only);

async function main() {
  const { rows: versionRows } = await admin.query("SHOW server_version");
  const results = {
    when: new Date().toISOString(),
    machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.platform()} ${os.arch()}`,
    node: process.version,
    postgres: versionRows[0].server_version,
    figures: {},
  };

  // Warm up each mode (connections, prepared statements, JIT) before measuring.
  if (!only) {
    for (const mode of modes) {
      await replay(mode);
      await appendThroughput(mode);
    }
  }

  // Each figure is measured ROUNDS times per mode, the modes taking turns in a rotating
  // order (so no mode always runs right after another warmed the server); the median
  // round is reported.
  const table = [];
  for (const [label, measure, show, value, higherIsBetter, ROUNDS, more = []] of figures) {
    const metrics = [{ label, show, value, higherIsBetter }, ...more];
    if (!metrics.some((m) => selected(m.label))) continue;
    /** @type {Record<string, Result[]>} */
    const rounds = Object.fromEntries(modes.map((m) => [m.key, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < modes.length; i++) {
        const mode = modes[(i + round) % modes.length];
        rounds[mode.key].push(await measure(mode));
      }
    }
    for (const metric of metrics) {
      const valueOf = (r) => (r.unsupported ? null : metric.value(r));
      const measured = {};
      for (const mode of modes) {
        const known = rounds[mode.key].filter((r) => valueOf(r) !== null && valueOf(r) !== undefined);
        if (!known.length) {
          measured[mode.key] = rounds[mode.key][0];
          continue;
        }
        const sorted = known.sort((a, b) => valueOf(a) - valueOf(b));
        const worst = metric.higherIsBetter ? sorted[0] : sorted[sorted.length - 1];
        measured[mode.key] = metric.worst ? worst : sorted[Math.floor(sorted.length / 2)];
      }
      const row = { figure: metric.label };
      const base = valueOf(measured.baseline);
      for (const mode of modes) {
        const r = measured[mode.key];
        const v = valueOf(r);
        let cell = r.unsupported ? `n/a (${r.unsupported})` : metric.show(r);
        if (mode.key !== "baseline" && !metric.noRatio && v > 0 && base > 0) {
          cell += ` (${(metric.higherIsBetter ? v / base : base / v).toFixed(2)}x)`;
        }
        row[mode.key] = cell;
      }
      results.figures[metric.label] = measured;
      table.push(row);
    }
    console.error(`measured: ${label}`);
  }

  // stop → abort has no baseline to compare with: measured for the modes that have it.
  if (!only || "stop in another process -> stopSignal aborts".includes(only)) {
    const stops = {};
    for (const mode of modes) {
      const rounds = [];
      for (let round = 0; round < 3; round++) {
        const r = await stopAcross(mode);
        if (r) rounds.push(r);
      }
      if (rounds.length) stops[mode.key] = rounds.sort((a, b) => a.p50Ms - b.p50Ms)[1];
    }
    results.figures["stop in another process -> stopSignal aborts"] = stops;
    const row = { figure: "stop in another process -> stopSignal aborts" };
    for (const mode of modes)
      row[mode.key] = stops[mode.key]
        ? `p50 ${stops[mode.key].p50Ms} / p99 ${stops[mode.key].p99Ms} ms`
        : "(none: at its next append)";
    table.push(row);
    console.error("measured: stop signal");
  }

  // Vercel's resumable-stream on the same live workloads, when Redis answers.
  const rs = await measureSideBySide(results, selected);

  console.log(`\n${results.machine}; Node ${results.node}; PostgreSQL ${results.postgres}`);
  console.log("ratios: how many times better than the baseline (higher is better)\n");
  const headers = ["figure", ...modes.map((m) => m.key)];
  const titles = ["figure", ...modes.map((m) => m.name)];
  printTable(titles, headers, table);

  if (rs) printSideBySide(rs, results);

  // What observability costs appends: no SDK, an SDK sampling nothing, an SDK on.
  if (selected("observability cost")) {
    const { measureTelemetryCost, printTelemetryCost } = await import("./otel-cost.mjs");
    results.observabilityCost = await measureTelemetryCost(url);
    printTelemetryCost(results.observabilityCost);
  }

  writeFileSync(new URL("./results.json", import.meta.url), `${JSON.stringify(results, null, 2)}\n`);
  console.log("\nwritten: benchmark/results.json");
  if (problems.length) {
    console.error(`\nDELIVERY PROBLEMS (chunks missing, repeated or out of order):\n${problems.join("\n")}`);
    process.exitCode = 1;
  }
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    cleanUp().finally(() => process.exit(130));
  });
}

try {
  await main();
} finally {
  await cleanUp();
}
