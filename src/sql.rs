//! All SQL text of the package, and the checking of table names that goes into it.
//!
//! Table names are pasted into the statements unquoted, exactly as the original package
//! does (so `My_Table` still folds to `my_table`), which is safe only because every name
//! is checked here first: a plain or schema-qualified identifier, nothing else.

use std::sync::Arc;

use crate::error::{Error, Result};

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

/// The kind of value a result column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

/// One SQL statement and the columns its rows carry, in order. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Statement {
    pub text: Arc<str>,
    pub columns: &'static [Column],
    /// A text column whose values come as one string for all rows (the chunks of a
    /// page): one allocation and one conversion instead of one per row.
    pub joined: Option<usize>,
    /// The same work for many calls at once, which the Rust pool may send instead when it
    /// is busy (`backend/combine.rs`): each parameter as an array, each row led by the
    /// 1-based position of its call. Plain data: the calls waiting to go out are the
    /// pool's (one queue per `Combined`, known by its address).
    pub combined: Option<Arc<Combined>>,
}

/// The combined forms of a statement (see `Statement::combined`).
#[derive(Debug)]
pub struct Combined {
    /// Many calls at once: each parameter an array, each row led by its call's position.
    pub statement: Statement,
    /// For statements whose lane skips locked rows: the lane's form of a single call, and
    /// the side path's form, which waits for the lock.
    pub skipping: Option<(Statement, Statement)>,
}

impl Statement {
    fn new(text: String, columns: &'static [Column]) -> Self {
        Statement {
            text: text.into(),
            columns,
            joined: None,
            combined: None,
        }
    }

    /// A statement that returns no rows the caller reads (DDL).
    pub fn plain(text: String) -> Self {
        Statement::new(text, &[])
    }

    fn combined(mut self, text: String, columns: &'static [Column]) -> Self {
        self.combined = Some(Arc::new(Combined {
            statement: Statement::new(text, columns),
            skipping: None,
        }));
        self
    }

    /// A combined form whose statements skip rows locked elsewhere (a call they do not
    /// store gets no row), and the form that waits for the lock, which such calls take
    /// instead (see `backend/combine.rs`).
    ///
    /// `one` is the lane's form of a single call; this statement itself (which waits) is
    /// the side path's.
    fn combined_skipping_locked(
        mut self,
        one: String,
        many: String,
        columns: &'static [Column],
    ) -> Self {
        let side = Statement::new(self.text.to_string(), self.columns);
        let one = Statement::new(one, self.columns);
        self.combined = Some(Arc::new(Combined {
            statement: Statement::new(many, columns),
            skipping: Some((one, side)),
        }));
        self
    }

    fn joined(mut self, column: usize) -> Self {
        self.joined = Some(column);
        self
    }
}

/// The name wake-ups know a status table by: the one table however it is spelled.
/// Unquoted names fold to lower case, and an unqualified one is in the default schema
/// (`public`, with PostgreSQL's default search_path).
pub fn wake_key(table: &str) -> String {
    let table = table.to_ascii_lowercase();
    if table.contains('.') {
        table
    } else {
        format!("public.{table}")
    }
}

/// The key of a stream's finishes alone (stop, complete, fail), under which stop signals
/// wait: they are not woken by appends.
pub fn finish_key(wake_key: &str) -> String {
    format!("{wake_key}#finished")
}

/// Checks a table-name option: `name` or `schema.name`, each part a plain SQL identifier
/// (a letter or `_`, then letters, digits, `_` or `$`, at most 63 bytes).
pub fn table_name(option: &str, value: &str) -> Result<String> {
    let parts: Vec<&str> = value.split('.').collect();
    let ok = parts.len() <= 2
        && parts.iter().all(|p| {
            let mut chars = p.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
                && p.len() <= 63
        });
    if ok {
        Ok(value.to_string())
    } else {
        Err(Error::InvalidOption(format!(
            "option \"{option}\" must be a table name like my_table or my_schema.my_table \
             (letters, digits and _, starting with a letter or _), got {value:?}"
        )))
    }
}

/// The statements of `PostgresStreamStore`, for its two tables.
#[derive(Debug)]
pub struct StreamSql {
    pub create: Statement,
    pub append: Statement,
    /// `append`'s waiting form, never combined: an attempt that settles an unknown
    /// outcome goes alone, not behind other calls.
    pub append_alone: Statement,
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

/// How a single append statement ends, by durability.
struct Tail {
    /// What joins the insert's rows (`RELAXED`, or nothing).
    relaxed: &'static str,
    /// The final SELECT of `ins`'s seq, and (relaxed) the notification of the chunk.
    returning: String,
}

impl Tail {
    /// Durable: the statement returns the seq; the pool announces the chunk afterwards, in
    /// a transaction of its own (`backend/notify.rs`), so that concurrent writers never
    /// queue on the NOTIFY lock through each other's WAL flush. Relaxed: the commit does
    /// not wait for the flush, so the lock is held for no time that matters, and the
    /// statement notifies itself: one transaction a chunk, and other processes hear of it
    /// at the commit. Its payload is `backend/notify.rs`'s format (the chunk carried, or
    /// named when its JSON is too large); `notified` is NULL when even the name would not
    /// fit (an id of control characters), and then the pool announces it.
    fn new(key: &str, relaxed: bool, origin: &str) -> Self {
        if !relaxed {
            return Tail {
                relaxed: "",
                returning: "SELECT seq, NULL::int AS notified FROM ins".into(),
            };
        }
        let stream = format!("json_build_array(json_build_array('{key}', $1::text))");
        Tail {
            relaxed: RELAXED,
            returning: format!(
                "SELECT ins.seq, n.notified FROM ins LEFT JOIN LATERAL (\
                 SELECT CASE WHEN pg_notify('{NOTIFY_CHANNEL}', p) IS NULL THEN 1 ELSE 1 END AS notified \
                 FROM (SELECT CASE WHEN octet_length(c) <= 7500 THEN c ELSE x END AS p FROM (SELECT \
                 json_build_object('o', '{origin}', 's', {stream}, 'c', \
                 json_build_array(json_build_array('{key}', $1::text, ins.seq, $2::text)))::text AS c, \
                 json_build_object('o', '{origin}', 's', {stream}, 'x', {stream})::text AS x) j) q \
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
        let tail = Tail::new(&key, relaxed, origin);
        let relaxed = tail.relaxed;
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
            ),
            // One statement: the row lock on the status row orders concurrent appends, so
            // seqs are gapless and unique. Each append also pushes the expiry forward, which
            // is what lets `cleanup` tell an abandoned stream from a live one. This form
            // waits for a status row locked elsewhere; JS clients use it, and so does the
            // Rust pool for a stream whose row it found locked.
            append_alone: Statement::new(append_waiting(chunks, status, &tail), APPENDED),
            append: Statement::new(append_waiting(chunks, status, &tail), APPENDED)
                // The Rust pool's lane: the same, but a status row locked elsewhere is
                // skipped, so one held-up stream cannot stall the appends to all others.
                // No row back: locked elsewhere, or missing, finished or not at $4 - 1;
                // the waiting form (the side path) then tells which.
                .combined_skipping_locked(
                format!(
                    "WITH l AS (SELECT id FROM {status} WHERE id = $1::text AND state = 'active' \
                     FOR UPDATE SKIP LOCKED), \
                     s AS (UPDATE {status} st SET total_chunks = st.total_chunks + 1, \
                     expires_at = $3::bigint FROM l WHERE st.id = l.id \
                     AND ($4::int IS NULL OR st.total_chunks = $4::int - 1) RETURNING st.total_chunks), \
                     ins AS (INSERT INTO {chunks} (id, seq, data) SELECT $1::text, total_chunks, \
                     $2::text FROM s{relaxed} RETURNING seq) {returning}", returning = tail.returning
                ),
                // Many appends (to one or many streams) in one statement: $1/$2/$3 are the
                // ids, chunks and expiries in call order; each stream's seqs follow that
                // order. The status rows are locked in id order first, so two of these can
                // never deadlock; rows locked elsewhere are skipped. A call without a row
                // goes to the side path, whose waiting form tells why.
                    format!(
                        "WITH input AS (SELECT id, data, expires, expected, ord FROM unnest($1::text[], \
                         $2::text[], $3::bigint[], $4::int[]) \
                         WITH ORDINALITY AS i(id, data, expires, expected, ord)), \
                         locked AS (SELECT st.id FROM {status} st WHERE st.id = ANY($1::text[]) \
                         AND st.state = 'active' ORDER BY st.id FOR UPDATE SKIP LOCKED), \
                         counts AS (SELECT input.id, count(*)::int AS n, max(expires) AS expires, \
                         min(expected) AS expected \
                         FROM input JOIN locked USING (id) GROUP BY input.id), \
                         s AS (UPDATE {status} st SET total_chunks = st.total_chunks + counts.n, \
                         expires_at = counts.expires FROM counts WHERE st.id = counts.id \
                         AND (counts.expected IS NULL OR st.total_chunks = counts.expected - 1) \
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
                ),
            // The readers waiting in this process, checked at once: which of these
            // streams (given as JSON `[{"id": ..., "after": seq read up to}, ...]`) have chunks past that
            // seq, have finished, or are gone. One statement a tick for every waiting
            // reader, instead of one per reader.
            waiting: Statement::new(
                format!(
                    "SELECT w.id FROM json_to_recordset($1::text::json) AS w(id text, after int) \
                     LEFT JOIN {status} s ON s.id = w.id \
                     WHERE s.id IS NULL OR s.state <> 'active' OR s.total_chunks > w.after"
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
            // so the news cannot be lost when the writer's process exits right after.
            finish: Statement::new(
                format!(
                    "WITH u AS (UPDATE {status} SET state = $2::text, error = $3::text, \
                     expires_at = $4::bigint WHERE id = $1::text AND state = 'active' \
                     RETURNING id, total_chunks) \
                     SELECT total_chunks, pg_notify('{NOTIFY_CHANNEL}', json_build_object('o', $5::text, \
                     'f', 1, 's', json_build_array(json_build_array('{key}', id)), \
                     'e', json_build_array(json_build_array('{key}', id, $2::text, total_chunks)))::text) \
                     AS notified FROM u"
                ),
                &[Column { name: "total_chunks", kind: Kind::Int }],
            ),
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
}

/// The tables both stores need, as the original's README has them, and the indexes on
/// `expires_at` that keep `cleanup` from reading whole tables once they are large. Each
/// statement is idempotent (`IF NOT EXISTS`), so running them again, or on tables made
/// by hand from the original's README, changes nothing but adds what is missing.
pub fn schema(chunks: &str, status: &str, conversations: &str) -> Vec<String> {
    // An index lives in its table's schema; its name is the table's, cut to fit 63 bytes.
    let index = |table: &str| {
        let bare = table.rsplit('.').next().unwrap_or(table);
        format!("{}_expires_at_idx", &bare[..bare.len().min(47)])
    };
    // The schemas of schema-qualified names, each once, first.
    let mut schemas: Vec<&str> = [chunks, status, conversations]
        .iter()
        .filter_map(|table| table.split_once('.').map(|(schema, _)| schema))
        .collect();
    schemas.dedup();
    let mut statements: Vec<String> = schemas
        .iter()
        .map(|schema| format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .collect();
    statements.extend([
        format!(
            "CREATE TABLE IF NOT EXISTS {chunks} (\n  id TEXT NOT NULL,\n  seq INTEGER NOT NULL,\n  \
             data TEXT NOT NULL,\n  PRIMARY KEY (id, seq)\n)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {status} (\n  id TEXT PRIMARY KEY,\n  \
             state TEXT NOT NULL DEFAULT 'active',\n  error TEXT,\n  \
             total_chunks INTEGER NOT NULL DEFAULT 0,\n  expires_at BIGINT NOT NULL\n)"
        ),
        format!("CREATE INDEX IF NOT EXISTS {} ON {status} (expires_at)", index(status)),
        format!(
            "CREATE TABLE IF NOT EXISTS {conversations} (\n  session_id TEXT PRIMARY KEY,\n  \
             data TEXT NOT NULL,\n  expires_at BIGINT NOT NULL\n)"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {conversations} (expires_at)",
            index(conversations)
        ),
    ]);
    statements
}

/// The statements of `PostgresConversationStore`, for its table.
#[derive(Debug)]
pub struct ConversationSql {
    pub load: Statement,
    pub save: Statement,
    pub delete: Statement,
    pub cleanup: Statement,
}

impl ConversationSql {
    pub fn new(table: &str) -> Self {
        ConversationSql {
            load: Statement::new(
                format!(
                    "SELECT data FROM {table} WHERE session_id = $1::text AND expires_at > $2::bigint"
                ),
                &[Column { name: "data", kind: Kind::Text }],
            )
            .combined(
                format!(
                    "SELECT i.ord::int AS ord, t.data FROM unnest($1::text[], $2::bigint[]) \
                     WITH ORDINALITY AS i(session_id, now, ord) JOIN {table} t \
                     ON t.session_id = i.session_id AND t.expires_at > i.now"
                ),
                &[
                    Column { name: "ord", kind: Kind::Int },
                    Column { name: "data", kind: Kind::Text },
                ],
            ),
            save: Statement::new(
                format!(
                    "INSERT INTO {table} (session_id, data, expires_at) \
                     VALUES ($1::text, $2::text, $3::bigint) ON CONFLICT (session_id) \
                     DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at"
                ),
                &[],
            )
            // Many saves in one statement (one commit): the last save of a session in call
            // order wins, as it would one after another; rows go in session order, so two
            // of these can never deadlock.
            .combined(
                format!(
                    "INSERT INTO {table} (session_id, data, expires_at) \
                     SELECT DISTINCT ON (session_id) session_id, data, expires \
                     FROM unnest($1::text[], $2::text[], $3::bigint[]) \
                     WITH ORDINALITY AS i(session_id, data, expires, ord) \
                     ORDER BY session_id, ord DESC \
                     ON CONFLICT (session_id) \
                     DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at"
                ),
                &[],
            ),
            delete: Statement::new(
                format!("DELETE FROM {table} WHERE session_id = $1::text"),
                &[],
            ),
            cleanup: Statement::new(
                format!(
                    "WITH gone AS (DELETE FROM {table} WHERE expires_at < $1::bigint RETURNING 1) \
                     SELECT count(*)::int AS removed FROM gone"
                ),
                &[Column { name: "removed", kind: Kind::Int }],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_schema_qualified_names() {
        for ok in [
            "aibind_stream_chunks",
            "_t",
            "app.chunks",
            "S1.t$2",
            "Mixed_Case",
        ] {
            assert_eq!(table_name("table", ok).unwrap(), ok);
        }
    }

    #[test]
    fn refuses_anything_else() {
        let long = "a".repeat(64);
        for bad in [
            "",
            "1abc",
            "a.b.c",
            "a.",
            ".a",
            "t; DROP TABLE x",
            "t--",
            "\"quoted\"",
            "sp ace",
            "tä",
            long.as_str(),
        ] {
            let err = table_name("chunksTable", bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_OPTION", "{bad:?}");
            assert!(err.to_string().contains("chunksTable"));
        }
    }

    #[test]
    fn schema_is_idempotent_and_names_indexes_in_the_tables_schema() {
        let ddl = schema("app.chunks", "app.status", "convs");
        assert_eq!(ddl.len(), 6);
        assert_eq!(ddl[0], "CREATE SCHEMA IF NOT EXISTS app");
        assert!(ddl.iter().all(|s| s.contains("IF NOT EXISTS")));
        assert!(
            ddl[3].starts_with("CREATE INDEX IF NOT EXISTS status_expires_at_idx ON app.status")
        );
        assert_eq!(schema("c", "s", "v").len(), 5);
        let long = "t".repeat(63);
        assert_eq!(schema("c", "s", "v").len(), 5);
        assert!(schema("c", &long, "v")[2].contains(&format!("{}_expires_at_idx ", "t".repeat(47))));
    }

    #[test]
    fn statements_use_the_given_tables() {
        let s = StreamSql::new("c.chunks", "c.status", false, "o");
        assert!(s.append.text.contains("UPDATE c.status"));
        assert!(!s.append.text.contains("synchronous_commit"));
        assert!(s.append.text.contains("INSERT INTO c.chunks"));
        assert!(!s.create.text.contains("aibind_"));
        // Relaxed: every form of the append, and nothing else, commits without the flush.
        let relaxed = StreamSql::new("c.chunks", "c.status", true, "o");
        let combined = relaxed.append.combined.as_ref().expect("a combined form");
        for text in [&relaxed.append.text, &relaxed.append_alone.text]
            .into_iter()
            .chain([&combined.statement.text])
            .chain(
                combined
                    .skipping
                    .iter()
                    .flat_map(|(one, side)| [&one.text, &side.text]),
            )
        {
            assert!(
                text.contains("set_config('synchronous_commit', 'off', true)"),
                "{text}"
            );
        }
        assert!(!relaxed.finish.text.contains("synchronous_commit"));
        assert!(!relaxed.create.text.contains("synchronous_commit"));
        let c = ConversationSql::new("convs");
        assert!(c.save.text.contains("INSERT INTO convs"));
    }
}
