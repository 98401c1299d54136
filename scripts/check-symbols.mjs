#!/usr/bin/env node
// `node scripts/check-symbols.mjs FILE.node...`: the C library a Linux binary needs, read
// from its dynamic symbols (`objdump -T`) and its NEEDED entries (`objdump -p`).
//   *-gnu.node:  fails if any symbol needs a glibc above the floor (GLIBC_2.17), the oldest
//                glibc the published binaries support (RHEL 7, Amazon Linux 2, Debian 8).
//   *-musl.node: fails on any glibc symbol version, or a NEEDED library that is not musl's.
// First it checks itself on a binary that must fail (this Node, built against a newer
// glibc), so a check that can no longer fail is caught. scripts/build-linux.sh runs it
// on every binary it builds.
import { execFileSync } from "node:child_process";
import process from "node:process";

export const GLIBC_FLOOR = "2.17";

/** @param {string} a @param {string} b */
const compare = (a, b) => {
  const x = a.split(".").map(Number);
  const y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  }
  return 0;
};

/**
 * @param {string} file
 * @returns {{ glibc: string[], max: string | null, needed: string[] }}
 */
export function symbols(file) {
  const dynamic = execFileSync("objdump", ["-T", file], { encoding: "utf8", maxBuffer: 64 << 20 });
  const headers = execFileSync("objdump", ["-p", file], { encoding: "utf8", maxBuffer: 64 << 20 });
  const glibc = [...new Set([...dynamic.matchAll(/GLIBC_(\d+(?:\.\d+)+)/g)].map((m) => m[1]))].sort(compare);
  const needed = [...headers.matchAll(/^\s*NEEDED\s+(\S+)/gm)].map((m) => m[1]);
  return { glibc, max: glibc.at(-1) ?? null, needed };
}

/**
 * The problems of one binary, by its libc (from its name: "-musl" or else glibc).
 * @param {string} file
 * @returns {{ problems: string[], summary: string }}
 */
export function check(file) {
  const { glibc, max, needed } = symbols(file);
  const problems = [];
  if (/-musl\.node$/.test(file)) {
    if (glibc.length > 0) problems.push(`glibc symbol versions in a musl binary: ${glibc.join(", ")}`);
    const foreign = needed.filter((n) => !/^libc\.musl-[\w-]+\.so\.1$|^libc\.so$|^libgcc_s\.so\.1$/.test(n));
    if (foreign.length > 0) problems.push(`needs libraries musl systems lack: ${foreign.join(", ")}`);
    return { problems, summary: `musl, NEEDED ${needed.join(" ") || "(none)"}` };
  }
  if (max === null) problems.push("no GLIBC_ symbol versions found: not a glibc binary?");
  else if (compare(max, GLIBC_FLOOR) > 0) {
    const above = glibc.filter((v) => compare(v, GLIBC_FLOOR) > 0);
    problems.push(`needs glibc ${max}, above the floor ${GLIBC_FLOOR} (${above.map((v) => `GLIBC_${v}`).join(", ")})`);
  }
  return { problems, summary: `GLIBC max ${max}, NEEDED ${needed.join(" ")}` };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node scripts/check-symbols.mjs FILE.node...");
    process.exit(2);
  }
  // The check must be able to fail: this Node needs a glibc newer than the floor.
  if (check(process.execPath).problems.length === 0 && symbols(process.execPath).max !== null) {
    console.error(
      `check-symbols: ${process.execPath} passed, but its glibc is above ${GLIBC_FLOOR}: the check is broken`,
    );
    process.exit(1);
  }
  let failed = false;
  for (const file of files) {
    const { problems, summary } = check(file);
    console.log(`${file}: ${summary}${problems.length > 0 ? `\n  FAIL: ${problems.join("\n  FAIL: ")}` : " (ok)"}`);
    failed ||= problems.length > 0;
  }
  process.exit(failed ? 1 : 0);
}
