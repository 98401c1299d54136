//! The statements of `PostgresStreamStore`: create, append (its waiting, lane and
//! combined forms), status, lookup, finish (stop / complete / fail), read a page,
//! cleanup, and the shared check of waiting readers.

use super::citus;
use super::statement::{Column, Kind, Statement};
use super::tables::wake_key;

/// How many chunks one page of `readFrom` holds at the most.
pub const PAGE_ROWS: i32 = 2000;
/// Chunks up to this many bytes come in pages of up to `PAGE_ROWS`, so a page holds
/// about 4 MiB at the most; a larger chunk comes in a page of its own.
pub const SMALL_CHUNK_BYTES: i64 = 2048;

/// The channel of the NOTIFY that tells listening processes a stream was written; its
/// payload is JSON: `{"o": <the writing process>, "s": [[status table, stream id], ...]}`,
/// with the chunks written (`c`) and the streams finished (`e`) when they fit (see
/// `backend/notify.rs`).
pub const NOTIFY_CHANNEL: &str = "aibind_stream_writes";
/// The most bytes a payload on `NOTIFY_CHANNEL` takes: well under PostgreSQL's limit of
/// 8,000, which fails the statement that sends more.
pub const NOTIFY_MOST_BYTES: usize = 7_500;
/// The statements of `PostgresStreamStore`, for its two tables.
#[derive(Debug)]
pub struct StreamSql {
    pub create: Statement,
    pub append: Statement,
    /// `append`'s waiting form, never combined: an attempt that settles an unknown
    /// outcome goes alone, not behind other calls.
    pub append_alone: Statement,
    /// Durable only: `append`'s waiting form that also announces its chunk, for an
    /// append a JS client's store makes alone (`backend/notify_choice.rs`).
    pub append_notifying: Option<Statement>,
    /// `append_notifying`'s text with one more parameter, `$5`: payloads of earlier
    /// chunks (a JSON array), held back to go out in the same transaction (NULL: none),
    /// notified first.
    /// Sent only from JS, so it is text alone.
    pub append_carrying: Option<String>,
    pub waiting: Statement,
    pub status: Statement,
    pub lookup: Statement,
    pub finish: Statement,
    pub read_page: Statement,
    pub cleanup: Statement,
}

const SEQ: Column = Column {
    name: "seq",
    kind: Kind::Int,
};

/// A single append's row: its seq, and (relaxed) 1 when the statement notified itself.
const APPENDED: &[Column] = &[
    SEQ,
    Column {
        name: "notified",
        kind: Kind::Int,
    },
];

/// The append that waits for a status row locked elsewhere. `$4`, when not NULL, is the
/// seq the chunk must take: the append then happens only if the stream has exactly
/// `$4 - 1` chunks, so it can never land anywhere else, nor twice (see `appendAt` in
/// `index.cjs`). `tail`: what follows the insert (`Tail`).
fn append_waiting(chunks: &str, status: &str, tail: &Tail) -> String {
    let Tail { relaxed, returning } = tail;
    format!(
        "WITH s AS (UPDATE {status} SET total_chunks = total_chunks + 1, \
         expires_at = $3::bigint \
         WHERE id = $1::text AND state = 'active' \
         AND ($4::int IS NULL OR total_chunks = $4::int - 1) RETURNING total_chunks), \
         ins AS (INSERT INTO {chunks} (id, seq, data) SELECT $1::text, total_chunks, $2::text \
         FROM s{relaxed} RETURNING seq) {returning}"
    )
}

/// How a single append statement ends: its durability, and whether it notifies itself.
struct Tail {
    /// What joins the insert's rows (`RELAXED`, or nothing).
    relaxed: &'static str,
    /// The final SELECT of `ins`'s seq, and (when it notifies) the notification of the
    /// chunk.
    returning: String,
}

impl Tail {
    /// `notify`: the statement notifies itself, in its own transaction: one transaction
    /// a chunk, and other processes hear of it at the commit. Its payload is
    /// `backend/notify.rs`'s format (the chunk carried, or named when its JSON is too
    /// large); `notified` is NULL when even the name would not fit (an id of control
    /// characters), and then the pool announces it. Otherwise the pool announces the
    /// chunk afterwards, in a transaction of its own (`backend/pool/notifier.rs`). The
    /// payload's `t` is the database server's clock as the statement runs, just before
    /// its commit: when the chunk was committed, for the delivery lag of readers elsewhere.
    /// The name-only payload is built only when the carrying one is too long.
    ///
    /// `carrying`: the statement takes payloads of earlier chunks (`$5`, a JSON array of
    /// them, or NULL) and notifies them just before its own, in the same transaction, so
    /// listeners wake once for all, and hear the earlier chunks first. Only when the chunk's own
    /// notification goes out too (`notified` not NULL).
    fn new(key: &str, relaxed: bool, notify: bool, carrying: bool, origin: &str) -> Self {
        let relaxed = if relaxed { RELAXED } else { "" };
        if !notify {
            return Tail {
                relaxed,
                returning: "SELECT seq, NULL::int AS notified FROM ins".into(),
            };
        }
        let stream = format!("json_build_array(json_build_array('{key}', $1::text))");
        let own = if carrying {
            format!(
                "CASE WHEN $5::text IS NULL THEN p \
                 WHEN (SELECT count(pg_notify('{NOTIFY_CHANNEL}', e)::text) \
                 FROM json_array_elements_text($5::text::json) AS e) < 0 THEN NULL ELSE p END"
            )
        } else {
            "p".to_string()
        };
        Tail {
            relaxed,
            returning: format!(
                "SELECT ins.seq, n.notified FROM ins LEFT JOIN LATERAL (\
                 SELECT CASE WHEN pg_notify('{NOTIFY_CHANNEL}', {own}) IS NULL THEN 1 ELSE 1 END AS notified \
                 FROM (SELECT CASE WHEN octet_length(c) <= 7500 THEN c \
                 ELSE json_build_object('o', '{origin}', 's', {stream}, 'x', {stream})::text END AS p \
                 FROM (SELECT json_build_object('o', '{origin}', 's', {stream}, 'c', \
                 json_build_array(json_build_array('{key}', $1::text, ins.seq, $2::text)), \
                 't', json_build_array(round((extract(epoch FROM clock_timestamp()) * 1000)::numeric, 3)))::text AS c) j) q \
                 WHERE octet_length(p) <= 7900) n ON true"
            ),
        }
    }
}

/// What joins an append's rows when `synchronousCommit: false`: the transaction's commit
/// then does not wait for the WAL flush (a setting local to the transaction, so it holds
/// behind a transaction pooler too, and nothing else is relaxed).
const RELAXED: &str = ", (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed";

impl StreamSql {
    /// `relaxed`: appends commit without waiting for the WAL flush (`RELAXED`), and
    /// notify themselves as `origin` (this process, `wakeups::origin`).
    pub fn new(chunks: &str, status: &str, relaxed: bool, origin: &str) -> Self {
        let key = wake_key(status);
        let on_citus = || citus::append(status, relaxed, APPENDED);
        // Relaxed appends always announce themselves: their commit does not wait for the
        // WAL flush, so the NOTIFY lock is held for no time that matters. Durable ones
        // may, on the Rust pool's lane, while that proves no slower (`notifying`).
        let tail = Tail::new(&key, relaxed, relaxed, false, origin);
        let notifying = (!relaxed).then(|| Tail::new(&key, false, true, false, origin));
        let carrying = (!relaxed).then(|| Tail::new(&key, false, true, true, origin));
        let relaxed = tail.relaxed;
        let lane = |tail: &Tail| {
            format!(
                "WITH l AS (SELECT id FROM {status} WHERE id = $1::text AND state = 'active' \
                 FOR UPDATE SKIP LOCKED), \
                 s AS (UPDATE {status} st SET total_chunks = st.total_chunks + 1, \
                 expires_at = $3::bigint FROM l WHERE st.id = l.id \
                 AND ($4::int IS NULL OR st.total_chunks = $4::int - 1) RETURNING st.total_chunks), \
                 ins AS (INSERT INTO {chunks} (id, seq, data) SELECT $1::text, total_chunks, \
                 $2::text FROM s{relaxed} RETURNING seq) {returning}",
                returning = tail.returning
            )
        };
        StreamSql {
            // Atomic: of two concurrent creates of one id, exactly one inserts. Chunks an
            // earlier stream of that id left behind (the original's cleanup can orphan
            // them) are removed, so the new stream's seq 1 cannot collide.
            create: Statement::new(
                format!(
                    "WITH ins AS (INSERT INTO {status} (id, state, total_chunks, expires_at) \
                     VALUES ($1::text, 'active', 0, $2::bigint) \
                     ON CONFLICT (id) DO NOTHING RETURNING id), \
                     orphans AS (DELETE FROM {chunks} WHERE id = (SELECT id FROM ins)) \
                     SELECT id FROM ins"
                ),
                &[Column { name: "id", kind: Kind::Text }],
            )
            .on_citus(citus::create(status)),
            // One statement: the row lock on the status row orders concurrent appends, so
            // seqs are gapless and unique. Each append also pushes the expiry forward, which
            // is what lets `cleanup` tell an abandoned stream from a live one. This form
            // waits for a status row locked elsewhere; JS clients use it, and so does the
            // Rust pool for a stream whose row it found locked.
            append_alone: Statement::new(append_waiting(chunks, status, &tail), APPENDED)
                .on_citus(on_citus()),
            append_notifying: notifying.as_ref().map(|tail| {
                Statement::new(append_waiting(chunks, status, tail), APPENDED).on_citus(on_citus())
            }),
            append_carrying: carrying.as_ref().map(|tail| append_waiting(chunks, status, tail)),
            append: Statement::new(append_waiting(chunks, status, &tail), APPENDED)
                .on_citus(on_citus())
                // The Rust pool's lane: the same, but a status row locked elsewhere is
                // skipped, so one held-up stream cannot stall the appends to all others.
                // No row back: locked elsewhere, or missing, finished or not at $4 - 1;
                // the waiting form (the side path) then tells which.
                .combined_skipping_locked(
                lane(&tail),
                // Many appends (to one or many streams) in one statement: $1/$2/$3 are the
                // ids, chunks and expiries in call order; each stream's seqs follow that
                // order. The status rows are locked in id order first, so two of these can
                // never deadlock; rows locked elsewhere are skipped. A call without a row
                // goes to the side path, whose waiting form tells why. Each call's seq is
                // the one it asks for ($4), or none of its stream's calls here are stored:
                // the k-th call of a stream asks for `count before + k`, so `expected - k`
                // is the same for all of them and equals the stream's count.
                    format!(
                        "WITH input AS (SELECT id, data, expires, expected, ord, \
                         row_number() OVER (PARTITION BY id ORDER BY ord) AS k FROM unnest($1::text[], \
                         $2::text[], $3::bigint[], $4::int[]) \
                         WITH ORDINALITY AS i(id, data, expires, expected, ord)), \
                         locked AS (SELECT st.id FROM {status} st WHERE st.id = ANY($1::text[]) \
                         AND st.state = 'active' ORDER BY st.id FOR UPDATE SKIP LOCKED), \
                         counts AS (SELECT input.id, count(*)::int AS n, max(expires) AS expires, \
                         count(expected)::int AS conditional, min(expected - k) AS lo, max(expected - k) AS hi \
                         FROM input JOIN locked USING (id) GROUP BY input.id), \
                         s AS (UPDATE {status} st SET total_chunks = st.total_chunks + counts.n, \
                         expires_at = counts.expires FROM counts WHERE st.id = counts.id \
                         AND (counts.conditional = 0 OR (counts.conditional = counts.n \
                         AND st.total_chunks = counts.lo AND counts.hi = counts.lo)) \
                         RETURNING st.id, st.total_chunks - counts.n AS base), \
                         numbered AS (SELECT input.ord, input.id, input.data, (s.base + row_number() \
                         OVER (PARTITION BY input.id ORDER BY input.ord))::int AS seq \
                         FROM input JOIN s USING (id)), \
                         ins AS (INSERT INTO {chunks} (id, seq, data) SELECT id, seq, data FROM numbered{relaxed}) \
                         SELECT ord::int AS ord, seq FROM numbered"
                    ),
                    &[
                        Column { name: "ord", kind: Kind::Int },
                        Column { name: "seq", kind: Kind::Int },
                    ],
                )
                .lane_notifying(notifying.as_ref().map(lane), carrying.as_ref().map(lane)),
            // The readers waiting in this process, checked at once: which of these
            // streams (given as JSON `[{"id": ..., "after": seq read up to, "below": n}, ...]`)
            // have chunks past that seq (or fewer than `below`: the count went back), have
            // finished, or are gone. One statement a tick for every waiting
            // reader, instead of one per reader.
            waiting: Statement::new(
                format!(
                    "SELECT w.id FROM json_to_recordset($1::text::json) AS w(id text, after int, below int) \
                     LEFT JOIN {status} s ON s.id = w.id \
                     WHERE s.id IS NULL OR s.state <> 'active' OR s.total_chunks > w.after \
                     OR s.total_chunks < w.below"
                ),
                &[Column { name: "id", kind: Kind::Text }],
            ),
            status: Statement::new(
                format!("SELECT state, error, total_chunks FROM {status} WHERE id = $1::text"),
                &[
                    Column { name: "state", kind: Kind::Text },
                    Column { name: "error", kind: Kind::Text },
                    Column { name: "total_chunks", kind: Kind::Int },
                ],
            ),
            // What settles an append whose outcome was unknown: the stream's state and
            // count, and the chunks at the seq it was to take ($2) and the one before it.
            lookup: Statement::new(
                format!(
                    "SELECT state, total_chunks, \
                     (SELECT data FROM {chunks} WHERE id = $1::text AND seq = $2::int) AS at, \
                     (SELECT data FROM {chunks} WHERE id = $1::text AND seq = $2::int - 1) AS before \
                     FROM {status} WHERE id = $1::text"
                ),
                &[
                    Column { name: "state", kind: Kind::Text },
                    Column { name: "total_chunks", kind: Kind::Int },
                    Column { name: "at", kind: Kind::Text },
                    Column { name: "before", kind: Kind::Text },
                ],
            ),
            // stop / complete / fail: only an active stream changes; its ttl starts now.
            // The change is announced to listening processes in the same transaction
            // (once per stream, so the NOTIFY lock at commit costs nothing that matters),
            // so the news cannot be lost when the writer's process exits right after. An
            // id too long to name within PostgreSQL's payload limit (a long id of control
            // characters, which JSON spells in 6 bytes each) is announced as a wake-up of
            // every reader (`w`, `backend/notify.rs`), never as an error that would leave
            // the stream active.
            finish: Statement::new(
                format!(
                    "WITH u AS (UPDATE {status} SET state = $2::text, error = $3::text, \
                     expires_at = $4::bigint WHERE id = $1::text AND state = 'active' \
                     RETURNING id, total_chunks), \
                     p AS (SELECT total_chunks, json_build_object('o', $5::text, \
                     'f', 1, 's', json_build_array(json_build_array('{key}', id)), \
                     'e', json_build_array(json_build_array('{key}', id, $2::text, total_chunks)))::text AS p \
                     FROM u) \
                     SELECT total_chunks, pg_notify('{NOTIFY_CHANNEL}', CASE WHEN octet_length(p) <= {MOST} \
                     THEN p ELSE json_build_object('o', $5::text, 'f', 1, 'w', 1)::text END) AS notified FROM p",
                    MOST = NOTIFY_MOST_BYTES,
                ),
                &[Column { name: "total_chunks", kind: Kind::Int }],
            )
            .on_citus(citus::finish(status)),
            // One round trip per page: the stream's state and chunk count (the row whose
            // seq is NULL, its data "<state> <total_chunks>"; none: the stream does not
            // exist) and the next chunks, read in one snapshot; two columns a row. Seqs are
            // gapless, so a page is the seq range (after, until], an index range scan
            // whatever the stream's length. A chunk longer than $4 bytes comes without its
            // text (its length is known without reading it): the page ends before it, and
            // it is read alone next. That bounds a page's memory at no cost per row.
            read_page: Statement::new(
                format!(
                    "SELECT NULL::int AS seq, state || ' ' || total_chunks AS data \
                     FROM {status} WHERE id = $1::text \
                     UNION ALL SELECT seq, CASE WHEN octet_length(data) <= $4::bigint THEN data END \
                     FROM {chunks} WHERE id = $1::text AND seq > $2::int AND seq <= $3::int"
                ),
                &[
                    Column { name: "seq", kind: Kind::Int },
                    Column { name: "data", kind: Kind::Text },
                ],
            )
            .joined(1),
            // One statement, so no chunk outlives its status row. Finished streams go once
            // their ttl has passed; active ones only once they have also been silent for
            // the stale period (their writer is gone). `= ANY(ARRAY(...))` makes the chunks
            // go by index, however large the table.
            cleanup: Statement::new(
                format!(
                    "WITH gone AS (DELETE FROM {status} WHERE expires_at < $1::bigint \
                     AND (state <> 'active' OR expires_at < $2::bigint) RETURNING id), \
                     chunks_gone AS (DELETE FROM {chunks} WHERE id = ANY(ARRAY(SELECT id FROM gone))) \
                     SELECT count(*)::int AS removed FROM gone"
                ),
                &[Column { name: "removed", kind: Kind::Int }],
            ),
        }
    }

    /// With the store's `notifyBatchMs`, for the pool's append lane (`Combined::notify_batch`).
    pub fn notify_batch(mut self, batch: std::time::Duration) -> Self {
        self.append = self.append.notify_batch(batch);
        self
    }

    /// The statements as a store sends them (`Statement::forced`): `citus` is the
    /// store's `citus` option.
    pub fn forced(self, citus: Option<bool>) -> Self {
        StreamSql {
            create: self.create.forced(citus),
            append: self.append.forced(citus),
            append_alone: self.append_alone.forced(citus),
            append_notifying: self.append_notifying.map(|s| s.forced(citus)),
            // Never on Citus, where a worker would send it.
            append_carrying: self.append_carrying.filter(|_| citus != Some(true)),
            waiting: self.waiting,
            status: self.status,
            lookup: self.lookup,
            finish: self.finish.forced(citus),
            read_page: self.read_page,
            cleanup: self.cleanup,
        }
    }
}
