//! The statements of `PostgresConversationStore`: load, save, delete, cleanup.

use super::statement::{Column, Kind, Statement};

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

    /// The statements as a store sends them (`Statement::forced`).
    pub fn forced(self, citus: Option<bool>) -> Self {
        ConversationSql {
            load: self.load.forced(citus),
            save: self.save.forced(citus),
            delete: self.delete,
            cleanup: self.cleanup,
        }
    }
}
