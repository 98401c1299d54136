// The `aibind-postgres` command's text output (for a person; `--json` prints the objects
// as they are): aligned tables, durations, byte sizes.
"use strict";

/** 90061000 -> "1d 1h", 61000 -> "1m 1s", 900 -> "0s". */
function duration(ms) {
  const s = Math.floor(Math.abs(ms) / 1000);
  /** @type {[number, string][]} */
  const parts = [
    [Math.floor(s / 86400), "d"],
    [Math.floor(s / 3600) % 24, "h"],
    [Math.floor(s / 60) % 60, "m"],
    [s % 60, "s"],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  if (first === -1) return "0s";
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, unit]) => `${n}${unit}`)
    .join(" ");
}

/** 1536 -> "1.5 kB" (powers of 1024, as PostgreSQL's pg_size_pretty). */
function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["bytes", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

/** Rows as a table under `headings`, numbers right-aligned. */
function table(headings, rows) {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : String(c))));
  const widths = headings.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const numeric = headings.map((_, i) => cells.length > 0 && cells.every((r) => /^-?[\d,.]+$|^-$/.test(r[i])));
  const line = (r) =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(headings), ...cells.map(line)].join("\n");
}

/** One line, at most `max` characters. */
function short(text, max) {
  const one = String(text).replace(/\s+/g, " ");
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/**
 * `streams`' text.
 * @param {{ streams: any[], more: boolean }} list
 * @param {number} now
 */
function streamsText({ streams, more }, now) {
  if (streams.length === 0) return "no streams match";
  const rows = streams.map((s) => {
    const expires = Date.parse(s.expiresAt) - now;
    return [
      s.id,
      s.state,
      s.totalChunks,
      `${duration(s.idleMs)} ago`,
      expires >= 0 ? `in ${duration(expires)}` : `${duration(expires)} ago`,
      s.removable ? "yes" : "no",
      s.error === null ? "" : short(s.error, 60),
    ];
  });
  const text = table(["ID", "STATE", "CHUNKS", "LAST WRITE", "EXPIRES", "CLEANUP", "ERROR"], rows);
  return more ? `${text}\n(more match: raise --limit or narrow the filters)` : text;
}

/**
 * `stats`' text.
 * @param {any} s
 */
function statsText(s) {
  const out = [];
  out.push(
    `database ${s.database} (PostgreSQL ${s.serverVersion}): ${s.clientConnections} client connections ` +
      `on the server, max_connections ${s.maxConnections}`,
  );
  out.push("", "connections to this database by application_name (this command left out):");
  out.push(
    s.connections.length === 0
      ? "  none"
      : indent(
          table(
            ["APPLICATION", "TOTAL", "ACTIVE", "IDLE", "IDLE IN TX", "WAITING ON LOCK", "OLDEST TX"],
            s.connections.map((c) => [
              c.applicationName === "" ? "(none)" : c.applicationName,
              c.total,
              c.active,
              c.idle,
              c.idleInTransaction,
              c.waitingOnLock,
              c.oldestTransactionMs === null ? "-" : duration(c.oldestTransactionMs),
            ]),
          ),
        ),
  );
  out.push("", "tables:");
  out.push(
    indent(
      table(
        ["TABLE", "SIZE", "ROWS (EST.)", "DEAD ROWS", "LAST AUTOVACUUM"],
        s.tables.map((t) =>
          t.exists
            ? [t.table, bytes(t.totalBytes), t.rowsEstimate, t.deadRows, t.lastAutovacuum ?? "never"]
            : [t.table, "missing (run migrate)", "-", "-", "-"],
        ),
      ),
    ),
  );
  if (s.streams) {
    const by = ["active", "stale", "done", "stopped", "error"]
      .filter((state) => state in s.streams.byState)
      .map((state) => `${state} ${s.streams.byState[state].streams} (${s.streams.byState[state].chunks} chunks)`);
    out.push("", `streams: ${by.length ? by.join(", ") : "none"}`);
    out.push(`waiting for cleanup: ${s.streams.removable.streams} streams, ${s.streams.removable.chunks} chunks`);
  }
  if (s.conversations) {
    out.push(`conversations: ${s.conversations.rows}, waiting for cleanup: ${s.conversations.removable}`);
  }
  return out.join("\n");
}

function indent(text) {
  return text.replace(/^/gm, "  ");
}

module.exports = { duration, bytes, table, streamsText, statsText };
