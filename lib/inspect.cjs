// The look-ups of the `aibind-postgres` command (`streams`, `stats`): all their SQL, run
// through `NativeBackend.queryText` (one text column of JSON back). The stores' own
// statements are in src/sql/; table names reach this file only after `schemaSql` has
// checked them (plain or schema-qualified identifiers), so pasting them is safe.
"use strict";

/** A stream's state as the command shows it: the stored one, or "stale" (see `streams`). */
const SHOWN = `CASE WHEN state = 'active' AND expires_at < $2::text::bigint THEN 'stale' ELSE state END`;

/**
 * Streams, newest first (by `expires_at`: the last write, or the finish, plus `ttlMs`).
 * Filters: `states` (shown states), `prefix` of the id, `idleBefore` (last write before,
 * in ms), `removable` (only what `cleanup()` would remove now). One row more than `limit`
 * tells that more matched.
 * @param {{ queryText(sql: string, params: string[]): Promise<string | null | undefined> }} db
 * @param {string} status the status table
 * @param {{ now: number, ttlMs: number, staleAfterMs: number, states: string[] | null,
 *   prefix: string, idleBefore: number | null, removable: boolean, limit: number }} f
 */
async function listStreams(db, status, f) {
  const sql = `SELECT coalesce(json_agg(s ORDER BY s."expiresAt" DESC, s.id), '[]')::text FROM (
    SELECT id, ${SHOWN} AS state, error, total_chunks AS "totalChunks", expires_at AS "expiresAt",
      expires_at < $1::text::bigint AND (state <> 'active' OR expires_at < $2::text::bigint) AS removable
    FROM ${status}
    WHERE left(id, char_length($3::text)) = $3::text
      AND ($4::text = '' OR ${SHOWN} = ANY(string_to_array($4::text, ',')))
      AND ($5::text = '' OR expires_at < $5::text::bigint)
      AND (NOT $6::text::boolean OR (expires_at < $1::text::bigint AND (state <> 'active' OR expires_at < $2::text::bigint)))
    ORDER BY expires_at DESC, id LIMIT $7::text::int) s`;
  const params = [
    f.now,
    f.now - f.staleAfterMs,
    f.prefix,
    f.states ? f.states.join(",") : "",
    // The last write is `expires_at - ttlMs`: before `idleBefore` means expiry before this.
    f.idleBefore === null ? "" : f.idleBefore + f.ttlMs,
    f.removable,
    f.limit + 1,
  ].map(String);
  const rows = JSON.parse((await db.queryText(sql, params)) ?? "[]");
  const more = rows.length > f.limit;
  const streams = rows.slice(0, f.limit).map((r) => {
    const expiresAt = Number(r.expiresAt);
    return {
      id: r.id,
      state: r.state,
      totalChunks: r.totalChunks,
      error: r.error ?? null,
      lastWriteAt: new Date(expiresAt - f.ttlMs).toISOString(),
      idleMs: Math.max(0, f.now - (expiresAt - f.ttlMs)),
      expiresAt: new Date(expiresAt).toISOString(),
      removable: r.removable,
    };
  });
  return { streams, more };
}

/**
 * What the server shows: this database's client connections by `application_name` (this
 * command's own left out), the server's connection limit, and each table's size and
 * upkeep (`exists: false` for a table not created).
 * @param {{ queryText(sql: string, params: string[]): Promise<string | null | undefined> }} db
 * @param {string[]} tables
 */
async function serverView(db, tables) {
  const sql = `SELECT json_build_object(
    'database', current_database(),
    'serverVersion', split_part(current_setting('server_version'), ' ', 1),
    'maxConnections', current_setting('max_connections')::int,
    'clientConnections', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
    'connections', (SELECT coalesce(json_agg(c ORDER BY c.total DESC, c."applicationName"), '[]') FROM (
      SELECT application_name AS "applicationName", count(*) AS total,
        count(*) FILTER (WHERE state = 'active') AS active,
        count(*) FILTER (WHERE state = 'idle') AS idle,
        count(*) FILTER (WHERE state LIKE 'idle in transaction%') AS "idleInTransaction",
        count(*) FILTER (WHERE wait_event_type = 'Lock') AS "waitingOnLock",
        floor(extract(epoch FROM max(now() - xact_start)) * 1000)::bigint AS "oldestTransactionMs"
      FROM pg_stat_activity
      WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
      GROUP BY application_name) c),
    'tables', (SELECT json_agg(json_build_object(
        'table', t.name,
        'exists', r.oid IS NOT NULL,
        'totalBytes', pg_total_relation_size(r.oid),
        'rowsEstimate', CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END,
        'deadRows', u.n_dead_tup,
        'lastAutovacuum', u.last_autovacuum) ORDER BY t.n)
      FROM unnest(string_to_array($1::text, ',')) WITH ORDINALITY AS t(name, n)
      LEFT JOIN LATERAL (SELECT to_regclass(t.name) AS oid) r ON true
      LEFT JOIN pg_class c ON c.oid = r.oid
      LEFT JOIN pg_stat_user_tables u ON u.relid = r.oid))::text`;
  return JSON.parse(/** @type {string} */ (await db.queryText(sql, [tables.join(",")])));
}

/**
 * The status table's streams by shown state (with their chunks), and what `cleanup()`
 * would remove now: status rows and the chunks that go with them.
 * @param {{ queryText(sql: string, params: string[]): Promise<string | null | undefined> }} db
 * @param {string} status
 * @param {{ now: number, staleAfterMs: number }} at
 */
async function streamCounts(db, status, { now, staleAfterMs }) {
  const sql = `SELECT json_build_object(
    'byState', (SELECT coalesce(json_object_agg(state, json_build_object('streams', n, 'chunks', chunks)), '{}')
      FROM (SELECT ${SHOWN} AS state, count(*) AS n, coalesce(sum(total_chunks), 0) AS chunks
        FROM ${status} GROUP BY 1) s),
    'removable', (SELECT json_build_object('streams', count(*), 'chunks', coalesce(sum(total_chunks), 0))
      FROM ${status} WHERE expires_at < $1::text::bigint AND (state <> 'active' OR expires_at < $2::text::bigint)))::text`;
  return JSON.parse(/** @type {string} */ (await db.queryText(sql, [String(now), String(now - staleAfterMs)])));
}

/**
 * Conversations in `table`, and those `cleanup()` would remove now (expired).
 * @param {{ queryText(sql: string, params: string[]): Promise<string | null | undefined> }} db
 * @param {string} table
 * @param {number} now
 */
async function conversationCounts(db, table, now) {
  const sql = `SELECT json_build_object('rows', count(*),
    'removable', count(*) FILTER (WHERE expires_at < $1::text::bigint))::text FROM ${table}`;
  return JSON.parse(/** @type {string} */ (await db.queryText(sql, [String(now)])));
}

module.exports = { listStreams, serverView, streamCounts, conversationCounts };
