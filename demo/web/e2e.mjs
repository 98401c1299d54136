// `npm run test:web`: the browser demo end to end in headless Chromium (Debian's
// `chromium`, driven by playwright-core; no browser download). Starts `demo/web/server.mjs`
// and checks: a reload mid-stream resumes exactly where it left off, a second tab joins
// live, and Stop stops the stream for every tab. Saves a screenshot for the README.
/// <reference lib="dom" />
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import process from "node:process";
import { chromium } from "playwright-core";
import { answerFor } from "./model.mjs";

const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
if (!existsSync(executablePath))
  throw new Error(`no Chromium at ${executablePath}: apt-get install chromium (or set CHROMIUM)`);

const server = spawn(process.execPath, [new URL("./server.mjs", import.meta.url).pathname], {
  env: { ...process.env, PORT: "0", TOKEN_MS: "60" },
  stdio: ["ignore", "pipe", "pipe"],
});
// The server's stderr, passed on and kept: it must print no warning (one per answer, such
// as MaxListenersExceededWarning, is what a user would see first).
let serverErr = "";
server.stderr.on("data", (d) => {
  serverErr += d;
  process.stderr.write(d);
});
const base = await new Promise((resolve, reject) => {
  server.stdout.on("data", (d) => {
    const found = String(d).match(/http:\/\/127\.0\.0\.1:\d+\//);
    if (found) resolve(found[0]);
  });
  server.on("exit", (code) => reject(new Error(`the demo server exited (${code})`)));
});

const browser = await chromium.launch({
  executablePath,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
  ],
});
const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};
const seqOf = async (page) => Number((await page.locator("#answer").getAttribute("data-seq")) ?? 0);
const textOf = (page) => page.locator("#answer").textContent();
const ended = (page, state) =>
  page.waitForFunction(
    (s) => /** @type {HTMLElement} */ (document.getElementById("status")).dataset.state === s,
    state,
    { timeout: 30_000 },
  );

try {
  const context = await browser.newContext({ viewport: { width: 900, height: 620 } });

  // 1. Reload mid-stream, and a second tab.
  const prompt = "What makes a stream resumable?";
  const full = answerFor(prompt).join("");
  const tabA = await context.newPage();
  await tabA.goto(base);
  await tabA.fill("#prompt", prompt);
  await tabA.click("#send");
  await tabA.waitForFunction(
    () => Number(/** @type {HTMLElement} */ (document.getElementById("answer")).dataset.seq ?? 0) >= 8,
  );
  const beforeReload = await textOf(tabA);
  const seqBefore = await seqOf(tabA);
  await tabA.reload();
  const resumed = (await tabA.locator("#status").textContent()) ?? "";
  check(
    /^resumed after seq \d+$/.test(resumed) && Number(resumed.split(" ").pop()) >= seqBefore,
    `after the reload the tab resumes after its last seq (${resumed})`,
  );
  check(
    full.startsWith(beforeReload) && beforeReload.length > 0,
    "before the reload it showed the start of the answer",
  );
  const tabB = await context.newPage();
  await tabB.goto(`${base}#${new URL(tabA.url()).hash.slice(1)}`);
  await tabB.waitForFunction(
    () => Number(/** @type {HTMLElement} */ (document.getElementById("answer")).dataset.seq ?? 0) > 0,
  );
  check(!(await tabB.locator("#stop").isDisabled()), "the second tab joined while the answer was still streaming");
  await Promise.all([ended(tabA, "done"), ended(tabB, "done")]);
  check((await textOf(tabA)) === full, "the reloaded tab shows the whole answer, no token missed or repeated");
  check((await textOf(tabB)) === full, "the second tab shows the whole answer");

  // 2. Stop, from one tab, for every tab.
  const first = new URL(tabA.url()).hash.slice(1);
  await tabA.fill("#prompt", "Stop me halfway");
  await tabA.click("#send");
  await tabA.waitForFunction(
    (old) =>
      location.hash.slice(1) !== old &&
      Number(/** @type {HTMLElement} */ (document.getElementById("answer")).dataset.seq) >= 5,
    first,
  );
  const second = new URL(tabA.url()).hash.slice(1);
  await tabB.goto(`${base}#${second}`); // the link pasted into the open tab
  await tabB.waitForFunction(
    (id) =>
      /** @type {HTMLElement} */ (document.getElementById("answer")).dataset.stream === id &&
      Number(/** @type {HTMLElement} */ (document.getElementById("answer")).dataset.seq) > 0,
    second,
  );
  await tabA.screenshot({ path: screenshotPath() });
  await tabA.click("#stop");
  await Promise.all([ended(tabA, "stopped"), ended(tabB, "stopped")]);
  const [stoppedA, stoppedB] = [await textOf(tabA), await textOf(tabB)];
  const fullStop = answerFor("Stop me halfway").join("");
  check(stoppedA === stoppedB, "both tabs stopped at the same token");
  check(fullStop.startsWith(stoppedA) && stoppedA.length < fullStop.length, "the answer stopped partway");
  await new Promise((resolve) => setTimeout(resolve, 300));
  check((await textOf(tabA)) === stoppedA, "nothing arrives after the stop");
} finally {
  await browser.close();
  server.kill("SIGTERM");
}
check(!/Warning/.test(serverErr), "the server printed no warning");

function screenshotPath() {
  const dir = new URL("../../docs/", import.meta.url).pathname;
  mkdirSync(dir, { recursive: true });
  return `${dir}demo-web.png`;
}

if (failures.length) {
  console.error(`test:web: ${failures.length} check(s) failed`);
  process.exit(1);
}
console.log("test:web: OK (resume after reload, second tab live, stop for every tab; screenshot docs/demo-web.png)");
