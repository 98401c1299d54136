// docs/benchmarks.md's charts are what benchmark/charts.mjs draws from
// docs/benchmarks/results.json: redrawn here, they must equal the committed files.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const out = mkdtempSync(join(tmpdir(), "aibind-charts-"));
execFileSync(process.execPath, [`${root}benchmark/charts.mjs`, "docs/benchmarks/results.json", out], { cwd: root });
const drawn = readdirSync(out).sort();
const page = readFileSync(`${root}docs/benchmarks.md`, "utf8");

afterAll(() => rmSync(out, { recursive: true, force: true }));

describe("the benchmark charts", () => {
  it("are the four docs/benchmarks.md shows", () => {
    expect(drawn).toEqual(["appends.svg", "database-work.svg", "latency.svg", "resumable-stream.svg"]);
    for (const file of drawn) expect(page).toContain(`](benchmarks/${file})`);
  });

  it.each(drawn)("%s is drawn from results.json as committed", (file) => {
    const svg = readFileSync(join(out, file), "utf8");
    expect(svg).not.toContain("not measured");
    expect(readFileSync(`${root}docs/benchmarks/${file}`, "utf8")).toBe(svg);
  });

  it("carry the figures of the tables", () => {
    const latency = readFileSync(join(out, "latency.svg"), "utf8");
    // "live tail, same process": 1.29 ms (connection string) against 54.1 ms (the original's algorithm).
    expect(latency).toContain(">1.29 ms<");
    expect(latency).toContain(">54.1 ms<");
    expect(page).toContain("p50 1.29 / p99 1.94 ms (41.95x)");
  });
});
