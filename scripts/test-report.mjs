#!/usr/bin/env node
// Summarises vitest JSON reports (one per PostgreSQL version) as the last lines of a CI
// log: a count, then every failed test with the start of its error. CI logs are often
// read from the end, so a failure must not be buried above later steps' output.
//
//   node scripts/test-report.mjs <folder of vitest-*.json>
import fs from "node:fs";
import path from "node:path";

const dir = process.argv[2];
const files = dir && fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
if (files.length === 0) {
  console.log("vitest: no report was written (the test command did not get that far)");
  process.exit(0);
}
let passed = 0;
let failed = 0;
const failures = [];
for (const file of files.sort()) {
  const run = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8"));
  passed += run.numPassedTests;
  failed += run.numFailedTests;
  if (run.success === false && run.numFailedTests === 0) {
    const note = "vitest failed outside any test (an unhandled error or rejection): see its output above";
    failures.push({ file, where: "", name: "(the run)", messages: [note] });
  }
  for (const suite of run.testResults ?? []) {
    const where = path.relative(process.cwd(), suite.name);
    const failedTests = (suite.assertionResults ?? []).filter((t) => t.status === "failed");
    for (const t of failedTests) failures.push({ file, where, name: t.fullName, messages: t.failureMessages ?? [] });
    // A file that failed to load has no failed test of its own, only a message.
    if (suite.status === "failed" && failedTests.length === 0 && suite.message) {
      failures.push({ file, where, name: "(the file itself)", messages: [suite.message] });
    }
  }
}
console.log(`vitest: ${passed} passed, ${failed} failed (${files.length} PostgreSQL versions)`);
for (const f of failures) {
  console.log(`\nFAILED [${f.file}] ${[f.where, f.name].filter(Boolean).join(" > ")}`);
  const text = f.messages.join("\n").split("\n").slice(0, 20).join("\n");
  console.log(text.replace(/^/gm, "  "));
}
