// A PgBouncer of our own for tests and benchmarks: Debian's `pgbouncer` binary with its
// own config in a temporary directory, on a free loopback port, in front of `target` (a
// postgres:// URL), stopped and removed by `stop()`. Only what a test needs is set;
// everything else (ignore_startup_parameters included) keeps PgBouncer's default.
//
//   const bouncer = await startPgBouncer({ target: DATABASE_URL, mode: "transaction" });
//   ... bouncer.url ...   (the target URL with host and port replaced)
//   await bouncer.stop();
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/** The pgbouncer binary, or a clear error saying how to get it. */
export function pgbouncerBinary() {
  for (const path of [process.env.PGBOUNCER, "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]) {
    if (!path) continue;
    try {
      execFileSync(path, ["--version"], { stdio: "ignore" });
      return path;
    } catch {
      // not there
    }
  }
  throw new Error("pgbouncer is not installed: `apt-get install pgbouncer` (or set PGBOUNCER to its path)");
}

/** PgBouncer will not run as root: as root, it runs as `postgres` (throwaway-postgres makes that user). */
function unprivileged() {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return {};
  const id = (flag) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

function answers(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/**
 * Starts PgBouncer in `mode` ("transaction" or "session") in front of `target`. `settings`:
 * more [pgbouncer] settings. Authentication: trust, for the target's user.
 */
export async function startPgBouncer({ target, mode = "transaction", settings = {} }) {
  const bin = pgbouncerBinary();
  const upstream = new URL(target);
  const user = decodeURIComponent(upstream.username || "postgres");
  const dir = mkdtempSync(join(tmpdir(), "aibind-pgbouncer-"));
  chmodSync(dir, 0o755);
  const ids = unprivileged();
  const port = await freePort();
  const config = {
    listen_addr: "127.0.0.1",
    listen_port: String(port),
    unix_socket_dir: "",
    auth_type: "trust",
    auth_file: join(dir, "users.txt"),
    pool_mode: mode,
    max_client_conn: "2000",
    default_pool_size: "20",
    logfile: join(dir, "pgbouncer.log"),
    pidfile: "",
    admin_users: user,
    ...settings,
  };
  const ini =
    `[databases]\n* = host=${upstream.hostname} port=${upstream.port || 5432}\n\n[pgbouncer]\n` +
    Object.entries(config)
      .map(([k, v]) => `${k} = ${v}`)
      .join("\n") +
    "\n";
  writeFileSync(join(dir, "pgbouncer.ini"), ini);
  writeFileSync(join(dir, "users.txt"), `"${user}" ""\n`);
  writeFileSync(join(dir, "pgbouncer.log"), "");
  if (ids.uid !== undefined) {
    for (const f of ["pgbouncer.ini", "users.txt", "pgbouncer.log"]) chownSync(join(dir, f), ids.uid, ids.gid);
    chownSync(dir, ids.uid, ids.gid);
  }
  let stderr = "";
  const child = spawn(bin, [join(dir, "pgbouncer.ini")], { ...ids, stdio: ["ignore", "ignore", "pipe"] });
  child.stderr.on("data", (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  const killNow = () => child.kill("SIGKILL");
  process.on("exit", killNow);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGINT");
      const timer = setTimeout(killNow, 5_000);
      await exited;
      clearTimeout(timer);
    }
    process.off("exit", killNow);
    rmSync(dir, { recursive: true, force: true });
  };
  const until = Date.now() + 10_000;
  while (!(await answers(port))) {
    if (child.exitCode !== null || Date.now() > until) {
      await stop();
      throw new Error(`PgBouncer did not start: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const url = new URL(target);
  url.hostname = "127.0.0.1";
  url.port = String(port);
  const admin = new URL(url.href);
  admin.pathname = "/pgbouncer";
  admin.search = "";
  const { readFileSync } = await import("node:fs");
  return { url: url.href, adminUrl: admin.href, port, mode, stop, log: () => readFileSync(config.logfile, "utf8") };
}
