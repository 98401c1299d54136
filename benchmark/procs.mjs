// Child processes for the benchmark, so that none outlives it and none can hang it: each
// is started with a deadline (killed, and its promise rejected, when that passes), an
// exit other than 0 rejects at once with its stderr, and every child still running when
// the benchmark ends, fails or is interrupted is killed. The children watch their parent
// too (child.mjs, resumable-stream.mjs): if it dies they exit.
import { spawn } from "node:child_process";

const running = new Set();

function killAll() {
  for (const proc of running) proc.kill("SIGKILL");
  running.clear();
}
process.once("exit", killAll);

/**
 * Starts `node script ...args`. Returns { proc, waitFor(text), result(), send(line), kill() }:
 * `waitFor` resolves once a stdout line equals `text`; `result` resolves the JSON on the
 * last stdout line (null if it is none) once the child exited with 0. Both reject if the child
 * fails or the deadline (`timeoutMs`, from the start) passes.
 * @param {string} script
 * @param {string[]} args
 * @param {{ env?: NodeJS.ProcessEnv, timeoutMs?: number, name?: string, node?: string[] }} [options]
 */
export function startChild(script, args, { env = process.env, timeoutMs = 60_000, name = args[0], node = [] } = {}) {
  const proc = spawn(process.execPath, [...node, script, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
  running.add(proc);
  let stdout = "";
  let stderr = "";
  const waiters = [];
  proc.stdout.setEncoding("utf8").on("data", (data) => {
    stdout += data;
    for (const w of [...waiters]) if (stdout.split("\n").includes(w.text)) w.resolve();
  });
  proc.stderr.setEncoding("utf8").on("data", (data) => (stderr += data));
  const describe = () => `benchmark child "${name}" (${args.slice(0, 2).join(" ")})`;
  /** @type {Promise<void>} */
  const exited = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`${describe()} did not finish within ${timeoutMs} ms; killed it. stderr:\n${stderr}`));
    }, timeoutMs);
    proc.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      running.delete(proc);
      if (code === 0) resolve();
      else reject(new Error(`${describe()} exited with ${signal ?? `code ${code}`}. stderr:\n${stderr}`));
    });
  });
  exited.catch(() => {}); // reported through waitFor / result
  proc.stdin.on("error", () => {}); // a child gone before we wrote to it
  return {
    proc,
    /**
     * Resolves once the child prints the line `text`; rejects if it exits first.
     * @param {string} text
     * @returns {Promise<void>}
     */
    waitFor: (text) =>
      new Promise((resolve, reject) => {
        if (stdout.split("\n").includes(text)) return resolve();
        waiters.push({ text, resolve });
        exited.then(() => reject(new Error(`${describe()} exited before printing "${text}"`)), reject);
      }),
    result: async () => {
      await exited;
      const last = stdout.trim().split("\n").pop();
      return last?.startsWith("{") ? JSON.parse(last) : null;
    },
    send: (line) => proc.stdin.write(`${line}\n`),
    kill: () => proc.kill("SIGKILL"),
  };
}

/** Waits for all the given children's results; if one fails, kills the others and rethrows. */
export async function allResults(children) {
  try {
    return await Promise.all(children.map((c) => c.result()));
  } catch (err) {
    for (const c of children) c.kill();
    throw err;
  }
}

/** For a child: exit when the parent is gone (its parent pid changes), so none is left behind. */
export function exitWithParent() {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(1);
  }, 500).unref();
}

export { killAll };
