//! The statements of `PostgresConversationStore`: load, save, delete, cleanup.

use super::statement::{Column, Kind, Statement};

/// The statements of `PostgresConversationStore`, for its table.
#[derive(Debug)]
pub struct ConversationSql {
    pub load: Statement,
    pub save: Statement,
    pub delete: Statement,
    pub cleanup: Statement,
    /// With a read replica: `load` there, only if the snapshot sees what this store saved.
    pub load_on_replica: Statement,
    /// With a read replica: `save` and `delete` that return their transaction's id.
    pub save_noting: Statement,
    pub delete_noting: Statement,
}

const XID: &[Column] = &[Column {
    name: "xid",
    kind: Kind::Text,
}];

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
            // On a standby: the session's data, if the statement's snapshot sees the
            // transaction of this store's last save of it ($3, NULL: none remembered) and
            // every transaction up to $4 (those it forgot; NULL: none) has ended; else one
            // row that says the replica is behind (`behind` 1). A standby's snapshot sees
            // a transaction once its commit is replayed there.
            load_on_replica: Statement::new(
                format!(
                    "WITH f AS (SELECT ($3::text IS NULL OR pg_visible_in_snapshot($3::text::xid8, s))                      AND ($4::text IS NULL OR pg_snapshot_xmin(s) > $4::text::xid8) AS fresh                      FROM pg_current_snapshot() AS s)                      SELECT t.data, 0 AS behind FROM f JOIN {table} t ON t.session_id = $1::text                      AND t.expires_at > $2::bigint WHERE f.fresh                      UNION ALL SELECT NULL, 1 FROM f WHERE NOT f.fresh"
                ),
                &[
                    Column { name: "data", kind: Kind::Text },
                    Column { name: "behind", kind: Kind::Int },
                ],
            ),
            save_noting: Statement::new(
                format!(
                    "WITH s AS (INSERT INTO {table} (session_id, data, expires_at)                      VALUES ($1::text, $2::text, $3::bigint) ON CONFLICT (session_id)                      DO UPDATE SET data = EXCLUDED.data, expires_at = EXCLUDED.expires_at)                      SELECT pg_current_xact_id()::text AS xid"
                ),
                XID,
            ),
            delete_noting: Statement::new(
                format!(
                    "WITH d AS (DELETE FROM {table} WHERE session_id = $1::text)                      SELECT pg_current_xact_id()::text AS xid"
                ),
                XID,
            ),
        }
    }

    /// The statements as a store sends them (`Statement::forced`).
    pub fn forced(self, citus: Option<bool>) -> Self {
        ConversationSql {
            load: self.load.forced(citus),
            save: self.save.forced(citus),
            delete: self.delete,
            cleanup: self.cleanup,
            load_on_replica: self.load_on_replica,
            save_noting: self.save_noting,
            delete_noting: self.delete_noting,
        }
    }
}
