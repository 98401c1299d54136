#!/usr/bin/env node
// Draws docs/benchmarks.md's charts (SVG) from a results file in the format bench.mjs
// writes (`results.figures[label][mode]`, `results.resumableStream`):
//
//   node benchmark/charts.mjs docs/benchmarks/results.json docs/benchmarks
//   node benchmark/charts.mjs benchmark/results.json docs/benchmarks   # after `npm run bench`
//
// Each chart is a set of groups, one per figure, with a bar per mode. Each group has its
// own scale (its largest value fills the width), so figures of different units share a
// chart; every bar carries its value.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";

/** @typedef {{ key: string, name: string, color: string }} Series */
/** @typedef {{ label: string, unit: string, values: Record<string, number> }} Group */
/** @typedef {{ title: string, series: Series[], groups: Group[] }} Chart */
/** @typedef {[label: string, values: Record<string, number>][]} Rows */

/** @type {Series[]} */
const MODES = [
  { key: "native", name: "connection string", color: "#2f6fb3" },
  { key: "js", name: "pg.Pool", color: "#6aa84f" },
  { key: "baseline", name: "original's algorithm", color: "#a6a6a6" },
];
const WITH_RS = [{ key: "rs", name: "resumable-stream", color: "#d9822b" }, ...MODES.slice(0, 2)];
const PRODUCER = "one producer + one live reader (same process), 1,000 awaited appends";
const FAN = "fan-out: 100 readers of one stream in 2 processes, 200 chunks 20 ms apart: lag";

const escape = (text) => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const round = (n) => (n >= 100 ? Math.round(n).toLocaleString("en") : String(Number(n.toPrecision(3))));

/**
 * `{ mode: value }` of one figure's field, for the modes that have it.
 * @param {any} results
 * @param {string} label
 * @param {string} field
 * @returns {Record<string, number>}
 */
function pick(results, label, field) {
  const figure = results.figures?.[label] ?? {};
  return Object.fromEntries(
    Object.entries(figure)
      .filter(([, r]) => r && typeof r[field] === "number")
      .map(([mode, r]) => [mode, r[field]]),
  );
}

/**
 * The charts a results file gives, each with its file name.
 * @param {any} results
 * @returns {[string, Chart][]}
 */
export function chartsOf(results) {
  const rs = results.resumableStream?.figures;
  /** @type {[string, Chart][]} */
  const charts = [
    [
      "appends.svg",
      {
        title: "Appends: chunks per second (higher is better)",
        series: MODES,
        groups: /** @type {Rows} */ ([
          [
            "50 streams x 200 appends, all at once",
            pick(results, "append throughput (50 streams x 200 appends)", "chunksPerSecond"),
          ],
          [
            "one producer, 1,000 awaited appends",
            pick(results, "one producer, 1,000 awaited appends to one stream", "chunksPerSecond"),
          ],
          ["the same, with a live reader", pick(results, PRODUCER, "chunksPerSecond")],
          [
            "the same, synchronousCommit: false",
            pick(results, `${PRODUCER}, synchronousCommit: false`, "chunksPerSecond"),
          ],
        ]).map(([label, values]) => ({ label, unit: "chunks/s", values })),
      },
    ],
    [
      "latency.svg",
      {
        title: "Live tail: from the append call to the reader, p50 (lower is better)",
        series: MODES,
        groups: /** @type {Rows} */ ([
          ["same process", pick(results, "live tail, same process", "p50Ms")],
          [
            "same process, 20 streams written at once",
            pick(results, "live tail, same process, 20 streams written at once", "p50Ms"),
          ],
          ["across processes", pick(results, "live tail, across processes", "p50Ms")],
          ["fan-out: 100 readers in 2 processes", pick(results, FAN, "p50Ms")],
        ]).map(([label, values]) => ({ label, unit: "ms", values })),
      },
    ],
    [
      "database-work.svg",
      {
        title: "Work for the database (lower is better)",
        series: MODES,
        groups: [
          {
            label: "fan-out: readers' transactions per chunk",
            unit: "",
            values: pick(results, "fan-out: readers' database transactions per chunk", "readersTransactionsPerChunk"),
          },
          {
            label: "fan-out: all transactions per chunk",
            unit: "",
            values: pick(
              results,
              "fan-out: all database transactions per chunk (writer + readers)",
              "allTransactionsPerChunk",
            ),
          },
          {
            label: "50 idle waiting readers: statements a second",
            unit: "/s",
            values: pick(results, "idle load, 50 waiting readers", "statementsPerSecond"),
          },
          {
            label: "replaying 1,000,000 chunks: peak memory growth",
            unit: "MB",
            values: pick(results, "replay 1,000,000 chunks: peak RSS growth", "rssGrowthMb"),
          },
        ],
      },
    ],
  ];
  if (rs) {
    const ours = (label, field) => pick(results, label, field);
    charts.push([
      "resumable-stream.svg",
      {
        title: "Beside resumable-stream (Redis pub/sub, nothing durable)",
        series: WITH_RS,
        groups: [
          {
            label: "live tail across processes, p50 (lower is better)",
            unit: "ms",
            values: { rs: rs.crossTail.p50Ms, ...ours("live tail, across processes", "p50Ms") },
          },
          {
            label: "fan-out to 100 readers, p50 (lower is better)",
            unit: "ms",
            values: { rs: rs.fanOut.p50Ms, ...ours(FAN, "p50Ms") },
          },
          {
            label: "fan-out: server operations per chunk (lower is better)",
            unit: "",
            values: {
              rs: rs.fanOut.redisCommandsPerChunk,
              ...ours("fan-out: all database transactions per chunk (writer + readers)", "allTransactionsPerChunk"),
            },
          },
          {
            label: "one producer + a live reader (higher is better)",
            unit: "chunks/s",
            values: { rs: rs.oneProducer.chunksPerSecond, ...ours(PRODUCER, "chunksPerSecond") },
          },
        ],
      },
    ]);
  }
  return charts;
}

/**
 * One chart as SVG text.
 * @param {Chart} chart
 * @param {string} [source] the results file it was drawn from
 */
export function svg({ title, series, groups }, source = "docs/benchmarks/results.json") {
  const width = 760;
  const labelWidth = 170;
  const barArea = 470;
  const row = 18;
  const lines = [];
  let y = 34;
  for (const group of groups) {
    lines.push(`<text x="10" y="${y + 13}" class="group">${escape(group.label)}</text>`);
    y += 20;
    const max = Math.max(...Object.values(group.values), 0) || 1;
    for (const s of series) {
      const value = group.values[s.key];
      lines.push(`<text x="${labelWidth - 8}" y="${y + 13}" class="mode" text-anchor="end">${escape(s.name)}</text>`);
      if (value === undefined) {
        lines.push(`<text x="${labelWidth}" y="${y + 13}" class="value">not measured</text>`);
      } else {
        const w = Math.max((value / max) * barArea, 1);
        lines.push(
          `<rect x="${labelWidth}" y="${y + 2}" width="${w.toFixed(1)}" height="${row - 4}" fill="${s.color}"/>`,
        );
        const unit = group.unit ? ` ${group.unit}` : "";
        lines.push(
          `<text x="${(labelWidth + w + 6).toFixed(1)}" y="${y + 13}" class="value">${escape(round(value) + unit)}</text>`,
        );
      }
      y += row;
    }
    y += 10;
  }
  const height = y + 18;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    "<style>.title{font-size:15px;font-weight:bold}.group{font-weight:bold}.mode{fill:#333}.value{fill:#111}.note{fill:#666;font-size:11px}</style>",
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="10" y="20" class="title">${escape(title)}</text>`,
    ...lines,
    `<text x="10" y="${height - 6}" class="note">Each group has its own scale. Drawn by benchmark/charts.mjs from ${escape(source)}.</text>`,
    "</svg>",
    "",
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [input, out] = process.argv.slice(2);
  if (!input || !out) {
    console.error("usage: node benchmark/charts.mjs <results.json> <folder>");
    process.exit(2);
  }
  mkdirSync(out, { recursive: true });
  for (const [file, chart] of chartsOf(JSON.parse(readFileSync(input, "utf8")))) {
    writeFileSync(join(out, file), svg(chart, input));
    console.log(`written: ${join(out, file)}`);
  }
}
