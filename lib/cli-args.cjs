// The `aibind-postgres` command's arguments: each command's flags and help text, the
// parsing and checking of them, and the connection string the command connects with.
"use strict";

const { storeError } = require("./errors.cjs");

/** What a user typed wrong: exit code 2, the message, and the command's usage. */
class UsageError extends Error {
  /**
   * @param {string} message
   * @param {string} [command] the command whose usage to show
   */
  constructor(message, command) {
    super(message);
    this.code = "INVALID_ARGUMENT";
    this.command = command;
  }
}

const DB = `  --url <string>     the database (default: $DATABASE_URL)
  --chunks-table, --status-table, --conversations-table <name>
                     table names, plain or schema-qualified, as the stores take them
                     (defaults: aibind_stream_chunks, aibind_stream_status,
                     aibind_conversations)`;
const JSON_FLAG = `  --json             machine-readable output (JSON; errors too, on stderr)`;
const TIMES = `  --ttl-ms <ms>      the stores' ttlMs (default 300000): the last write is taken as
                     expires_at minus this
  --stale-after-ms <ms>
                     the stores' staleAfterMs (default 3600000): an active stream with no
                     write for ttlMs + this is "stale", and cleanup() removes it`;

/** Each command: its one-line summary, its help, and its flags (name -> [key, kind]). */
const COMMANDS = {
  migrate: {
    summary: "create the stores' tables and indexes where missing (safe to run again)",
    usage: "aibind-postgres migrate [--url <string>] [--print] [--citus] [table flags]",
    help: `Creates the tables of PostgresStreamStore and PostgresConversationStore, and the
indexes that keep cleanup() fast, where missing.

  --print            print the SQL instead of running it (no connection)
  --citus            also distribute the tables with Citus (colocated, by stream id and
                     session id) and create the functions the stores call there
${DB}`,
    flags: { "--print": ["print", "bool"], "--citus": ["citus", "bool"] },
  },
  streams: {
    summary: "list streams: active, stale and finished, newest first, with filters",
    usage: "aibind-postgres streams [--state <list>] [--stale] [--prefix <id>] [--limit <n>] [--json]",
    help: `Lists streams, newest first (by their last write or finish), with their state, chunk
count, time since the last write, expiry, and whether cleanup() would remove them now.
States: active, stale (active, no write for ttlMs + staleAfterMs), done, stopped, error.

  --state <list>     only these states, comma-separated ("finished": done,stopped,error)
  --stale            only stale streams (same as --state stale)
  --prefix <text>    only ids that start with this
  --idle-ms <ms>     only streams whose last write is at least this old
  --removable        only streams cleanup() would remove now
  --limit <n>        at most this many (default 50)
${TIMES}
${JSON_FLAG}
${DB}`,
    flags: {
      "--state": ["states", "states"],
      "--stale": ["stale", "bool"],
      "--prefix": ["prefix", "string"],
      "--idle-ms": ["idleMs", "ms"],
      "--removable": ["removable", "bool"],
      "--limit": ["limit", "seq"],
      "--ttl-ms": ["ttlMs", "ms"],
      "--stale-after-ms": ["staleAfterMs", "ms"],
    },
  },
  tail: {
    summary: "print a stream as it is written, until it ends",
    usage: "aibind-postgres tail <id> [--from <seq> | --last <n>] [--json]",
    help: `Prints a stream's chunks as they are written, through the store's own readFrom (live
through LISTEN, as any reader), and ends when the stream ends. Chunk texts go to stdout as
they are; how it ended goes to stderr.

  --from <seq>       start at this chunk (default 1, the first)
  --last <n>         start with the last n chunks written so far
  --listen-url <string>
                     the stores' listenUrl: a direct connection for LISTEN behind a pooler
  --poll-interval-ms <ms>
                     the stores' pollIntervalMs (default 100)
  --json             one JSON object a line: {"seq","data"} per chunk, then
                     {"end":"done"|"stopped"|"error"|"missing","totalChunks","error"}
${DB}

Exit codes: 0 the stream completed, 3 it failed, 4 it was stopped, 5 no such stream
(never created, or removed by cleanup), 130 interrupted.`,
    flags: {
      "--from": ["from", "seq"],
      "--last": ["last", "count"],
      "--listen-url": ["listenUrl", "string"],
      "--poll-interval-ms": ["pollIntervalMs", "ms"],
    },
    positional: "id",
  },
  stats: {
    summary: "what the database shows: connections, table sizes, rows waiting for cleanup",
    usage: "aibind-postgres stats [--json]",
    help: `Shows what the database holds and sees: this database's connections by
application_name (the stores connect as "aibind-rs" unless the connection string names
one; this command as "aibind-postgres-cli", and leaves itself out), each table's size,
estimated rows, dead rows and last autovacuum, streams by state, and the rows cleanup()
would remove now. A running process's pool and reader figures are in its store.stats().

  --stale-after-ms <ms>
                     the stores' staleAfterMs (default 3600000)
${JSON_FLAG}
${DB}`,
    flags: { "--stale-after-ms": ["staleAfterMs", "ms"] },
  },
};

const COMMON = {
  "--url": ["url", "string"],
  "--chunks-table": ["chunksTable", "string"],
  "--status-table": ["statusTable", "string"],
  "--conversations-table": ["conversationsTable", "string"],
  "--json": ["json", "bool"],
  "--help": ["help", "bool"],
  "-h": ["help", "bool"],
};

const STATES = ["active", "stale", "done", "stopped", "error"];

const EXIT_CODES = `Exit codes: 0 done, 1 the database said no (connection, missing table, timeout),
2 bad input (unknown command or flag, bad value); tail: 3 failed, 4 stopped,
5 no such stream, 130 interrupted.`;

function overview() {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`);
  return `usage: aibind-postgres <command> [flags]   (aibind-postgres <command> --help)

${lines.join("\n")}

${EXIT_CODES}`;
}

/** The full help of one command. */
function helpOf(command) {
  const c = COMMANDS[command];
  return `usage: ${c.usage}\n\n${c.help}`;
}

/** A flag's value as its kind asks; a UsageError naming the flag otherwise. */
function valueOf(flag, kind, raw, command) {
  const bad = (what) => new UsageError(`${flag} must be ${what}, got "${raw}"`, command);
  if (kind === "string") return raw;
  if (kind === "states") {
    const states = raw.split(",").flatMap((s) => (s === "finished" ? ["done", "stopped", "error"] : [s.trim()]));
    const unknown = states.find((s) => !STATES.includes(s));
    if (unknown !== undefined) throw bad(`a comma-separated list of ${STATES.join(", ")} or finished`);
    return states;
  }
  if (!/^\d+$/.test(raw)) {
    throw bad(kind === "seq" ? "a whole number of at least 1" : "a whole number, 0 or more");
  }
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw bad("a whole number that is not that large");
  if (kind === "seq" && n < 1) throw bad("a whole number of at least 1");
  if (kind === "count" && n > 2_147_483_647) throw bad("at most 2147483647");
  return n;
}

/**
 * `argv` (after the command) as `{ flags, positional }`; a UsageError for an unknown
 * flag, a missing or bad value, or a wrong number of positional arguments.
 * @param {string} command
 * @param {string[]} argv
 */
function parse(command, argv) {
  const spec = { ...COMMON, ...COMMANDS[command].flags };
  /** @type {Record<string, any>} */
  const flags = {};
  const positional = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    const [flag, inline] = arg.split(/=(.*)/s, 2);
    if (!(flag in spec)) throw new UsageError(`unknown option "${arg}"`, command);
    const [key, kind] = spec[flag];
    if (kind === "bool") {
      if (inline !== undefined) throw new UsageError(`${flag} takes no value`, command);
      flags[key] = true;
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined || (inline === undefined && raw.startsWith("--"))) {
      throw new UsageError(`${flag} needs a value`, command);
    }
    flags[key] = valueOf(flag, kind, raw, command);
  }
  if (flags.help) return { flags, positional };
  const wanted = COMMANDS[command].positional;
  if (wanted && positional.length !== 1) {
    throw new UsageError(
      positional.length ? `one ${wanted} only, got ${positional.length}` : `no ${wanted} given`,
      command,
    );
  }
  if (!wanted && positional.length) throw new UsageError(`unexpected argument "${positional[0]}"`, command);
  return { flags, positional };
}

const APPLICATION_NAME = "aibind-postgres-cli";

/**
 * The connection string: `--url` or $DATABASE_URL, named `aibind-postgres-cli` in
 * pg_stat_activity unless it names itself.
 * @param {string | undefined} url
 * @param {string} command
 */
function connectionString(url, command) {
  const text = url ?? process.env.DATABASE_URL;
  if (!text) throw new UsageError("no database: pass --url or set DATABASE_URL", command);
  if (/(^|[?&\s])application_name=/.test(text)) return text;
  if (/^postgres(ql)?:\/\//.test(text))
    return `${text}${text.includes("?") ? "&" : "?"}application_name=${APPLICATION_NAME}`;
  return `${text} application_name=${APPLICATION_NAME}`;
}

/** A bad value the stores found (INVALID_OPTION) named by its flag. */
function flagged(err) {
  if (!err || typeof err.message !== "string") return err;
  let message = err.message;
  for (const [flag, [key]] of Object.entries({ ...COMMON, ...COMMANDS.streams.flags, ...COMMANDS.tail.flags })) {
    message = message.replaceAll(`option "${key}"`, flag);
  }
  return message === err.message ? err : storeError(err.code, message, err.sqlState);
}

module.exports = { COMMANDS, UsageError, overview, helpOf, parse, connectionString, flagged };
