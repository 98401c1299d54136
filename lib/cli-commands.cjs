// What each `aibind-postgres` command does once its arguments are parsed (lib/cli-args.cjs):
// migrate, streams, tail, stats. Each writes its output and resolves its exit code.
"use strict";

const { NativeBackend } = require("./binding.cjs");
const { run } = require("./errors.cjs");
const { construct, nativeOptions } = require("./options.cjs");
const { schemaSql, migrate } = require("./schema.cjs");
const { PostgresStreamStore } = require("./stream-store.cjs");
const { listStreams, serverView, streamCounts, conversationCounts } = require("./inspect.cjs");
const { streamsText, statsText } = require("./cli-print.cjs");
const { UsageError, connectionString } = require("./cli-args.cjs");

const DEFAULT_TTL_MS = 300_000;
const DEFAULT_STALE_AFTER_MS = 3_600_000;

/** The three table names, checked as the stores check them (INVALID_OPTION otherwise). */
function tables(flags) {
  const names = {
    chunksTable: flags.chunksTable,
    statusTable: flags.statusTable,
    conversationsTable: flags.conversationsTable,
  };
  schemaSql(names); // throws INVALID_OPTION for a name that is not an identifier
  return {
    chunks: names.chunksTable ?? "aibind_stream_chunks",
    status: names.statusTable ?? "aibind_stream_status",
    conversations: names.conversationsTable ?? "aibind_conversations",
    names,
  };
}

/** A one-connection backend for the look-ups, closed after `use`. */
async function withDb(flags, command, use) {
  const url = connectionString(flags.url, command);
  const backend = construct(() => NativeBackend.connect(url, nativeOptions({ poolSize: 1 })));
  const db = { queryText: (sql, params) => run(() => backend.queryText(sql, params)) };
  try {
    return await use(db);
  } finally {
    await backend.close();
  }
}

const print = (text) => process.stdout.write(`${text}\n`);
const json = (value) => print(JSON.stringify(value, null, 2));

async function migrateCommand(flags) {
  const { names } = tables(flags);
  const options = flags.citus ? { ...names, citus: true } : names;
  if (flags.print) {
    process.stdout.write(schemaSql(options));
    return 0;
  }
  const ran = await migrate(connectionString(flags.url, "migrate"), options);
  if (flags.json) json({ statements: ran.length });
  else print(`schema ready: ${ran.length} statements run (each creates only what was missing)`);
  return 0;
}

async function streamsCommand(flags) {
  const { status } = tables(flags);
  if (flags.stale && flags.states) throw new UsageError("--stale and --state together: give one", "streams");
  const now = Date.now();
  const ttlMs = flags.ttlMs ?? DEFAULT_TTL_MS;
  const filters = {
    now,
    ttlMs,
    staleAfterMs: flags.staleAfterMs ?? DEFAULT_STALE_AFTER_MS,
    states: flags.stale ? ["stale"] : (flags.states ?? null),
    prefix: flags.prefix ?? "",
    idleBefore: flags.idleMs === undefined ? null : now - flags.idleMs,
    removable: flags.removable === true,
    limit: flags.limit ?? 50,
  };
  const list = await withDb(flags, "streams", (db) => listStreams(db, status, filters));
  if (flags.json) json(list);
  else print(streamsText(list, now));
  return 0;
}

async function statsCommand(flags) {
  const t = tables(flags);
  const now = Date.now();
  const staleAfterMs = flags.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const stats = await withDb(flags, "stats", async (db) => {
    const view = await serverView(db, [t.chunks, t.status, t.conversations]);
    const exists = (name) => view.tables.some((x) => x.table === name && x.exists);
    return {
      ...view,
      streams: exists(t.status) ? await streamCounts(db, t.status, { now, staleAfterMs }) : null,
      conversations: exists(t.conversations) ? await conversationCounts(db, t.conversations, now) : null,
    };
  });
  if (flags.json) json(stats);
  else print(statsText(stats));
  return 0;
}

/** tail's exit code for how the stream ended. */
const ENDS = { done: 0, error: 3, stopped: 4, missing: 5 };

async function tailCommand(flags, [id]) {
  if (flags.from !== undefined && flags.last !== undefined) {
    throw new UsageError("--from and --last together: give one", "tail");
  }
  const { names } = tables(flags);
  const store = new PostgresStreamStore(connectionString(flags.url, "tail"), {
    chunksTable: names.chunksTable,
    statusTable: names.statusTable,
    listenUrl: flags.listenUrl,
    pollIntervalMs: flags.pollIntervalMs,
  });
  const line = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
  let interrupted = false;
  // Closing the store ends its waiting reader: the loop below ends at once.
  const onSigint = () => {
    interrupted = true;
    store.close().catch(() => {});
  };
  process.once("SIGINT", onSigint);
  try {
    let after = flags.from === undefined ? 0 : flags.from - 1;
    if (flags.last !== undefined) {
      const status = await store.getStatus(id);
      after = Math.max(0, (status?.totalChunks ?? 0) - flags.last);
    }
    let last = "\n";
    for await (const { seq, data } of store.readFrom(id, after)) {
      if (flags.json) line({ seq, data });
      else process.stdout.write(data);
      if (data !== "") last = data;
    }
    if (interrupted) return 130;
    const status = await store.getStatus(id);
    const end = status === null ? "missing" : status.state;
    if (!(end in ENDS)) {
      // readFrom ends only once the stream is not active: it was created again since.
      process.stderr.write(`aibind-postgres: stream "${id}" ended and was created again; tail it again\n`);
      return 1;
    }
    if (flags.json) {
      line({ end, totalChunks: status?.totalChunks ?? null, ...(status?.error ? { error: status.error } : {}) });
    } else {
      if (process.stdout.isTTY && !last.endsWith("\n")) process.stdout.write("\n");
      const chunks = `${status?.totalChunks} chunks`;
      const said = {
        done: `stream "${id}" done: ${chunks}`,
        stopped: `stream "${id}" stopped: ${chunks}`,
        error: `stream "${id}" failed after ${chunks}: ${status?.error}`,
        missing: `no stream "${id}" (never created, or removed by cleanup)`,
      };
      process.stderr.write(`aibind-postgres: ${said[end]}\n`);
    }
    return ENDS[end];
  } catch (err) {
    if (interrupted) return 130; // a call the close cut short
    throw err;
  } finally {
    process.off("SIGINT", onSigint);
    await store.close();
  }
}

const RUN = { migrate: migrateCommand, streams: streamsCommand, tail: tailCommand, stats: statsCommand };

module.exports = { RUN };
