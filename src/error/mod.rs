//! Every error a user can see: its stable code, whether retrying may help, and its
//! message, decided here once for both backends.
//!
//! A database error is classified by its SQLSTATE alone (`from_server`), whichever driver
//! reported it: the Rust pool's tokio-postgres or the caller's JS client. Errors without
//! one are classified by what failed: opening a connection (`could not connect`), a
//! connection lost while a statement ran (`lost the connection`: its outcome unknown), a
//! deadline, or the caller's client.
//!
//! napi-rs can only give a JS error a code from its own `Status` list, so an error crosses
//! into JS as a napi error whose message is a unit separator (U+001F) followed by JSON:
//! `{"code", "message", "sqlState"?, "retryable"}`. `index.cjs` turns it into a
//! `PostgresStoreError` with those fields; nothing is decided there.
//!
//! `classify.rs`: errors of the database and of connecting, by SQLSTATE or by what
//! failed; `crossing.rs`: the JSON crossing into JS.

mod classify;
mod crossing;

use std::fmt;

use tokio_postgres::error::SqlState;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The message of the original package, word for word.
    #[error("Stream \"{0}\" already exists")]
    StreamExists(String),
    /// The message of the original package, word for word.
    #[error("Stream \"{0}\" not found or not active")]
    StreamNotActive(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidOption(String),
    #[error("this store has been closed; create a new store to keep going")]
    Closed,
    /// PostgreSQL refused the statement (or, for SQLSTATEs of `Connection`, the session).
    #[error("{message}")]
    Database { message: String, sql_state: String },
    /// No connection could be made (refused, timed out, TLS, authentication, the server
    /// full), or the server refused the session: nothing was run.
    #[error("could not connect to PostgreSQL: {message}")]
    Connection {
        message: String,
        sql_state: Option<String>,
        retryable: bool,
    },
    /// The connection broke while a statement ran: it may or may not have taken effect.
    #[error(
        "lost the connection to PostgreSQL while the statement ran ({message}); whether it \
         took effect is unknown"
    )]
    Lost {
        message: String,
        sql_state: Option<String>,
    },
    /// The caller's `query` function threw or rejected with no SQLSTATE.
    #[error("{0}")]
    Client(String),
    /// The caller's `query` function resolved to something that is not `{ rows: [...] }`,
    /// or rows without the columns asked for, or with values out of range.
    #[error("{0}")]
    MalformedResult(String),
    /// A call did not finish within `queryTimeoutMs`, or the server stopped it (57014,
    /// or 55P03 for `lock_timeout`). `sent`: its statement had gone to the server (and may
    /// yet take effect, unless the server itself stopped it). `own_limit`: the server
    /// stopped it by its own `statement_timeout` / `lock_timeout` (the store did not
    /// cancel it): trying again within the same call would hit the same limit.
    #[error("{message}")]
    Timeout {
        message: String,
        sql_state: Option<String>,
        sent: bool,
        own_limit: bool,
    },
    /// A queue of the store is full: the database is not keeping up with the calls.
    #[error("{0}")]
    Overloaded(String),
    /// A stream's chunk count went back below what a reader had read: the database lost
    /// acknowledged writes (a failover to an asynchronous standby), or it was re-created.
    #[error(
        "the stream's chunk count went back to {total}, below the {read} chunks this reader \
         has read: the database lost writes it had acknowledged (a failover to an \
         asynchronous standby), or the stream was re-created. Chunks read past {total} will \
         not come again; read it again from afterSeq 0 for what it holds now"
    )]
    WentBack { total: i64, read: i64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failure to open a connection that does not say where to (a refused or timed-out
    /// TCP connection, a TLS failure): `target` (`host:port`) added.
    pub fn connecting_to(self, target: &str) -> Self {
        match self {
            Error::Connection {
                message,
                sql_state: None,
                retryable,
            } => {
                let message = if message.contains("Connection refused") {
                    format!(
                        "{message}: nothing accepts connections at {target}; is PostgreSQL \
                         running there, and are the host and port right?"
                    )
                } else {
                    format!("{message} (connecting to {target})")
                };
                Error::Connection {
                    message,
                    sql_state: None,
                    retryable,
                }
            }
            other => other,
        }
    }

    pub fn invalid_argument(message: impl fmt::Display) -> Self {
        Error::InvalidArgument(message.to_string())
    }

    /// A call that ran out of its `queryTimeoutMs` on this side while its statement was
    /// with the server.
    pub fn timed_out(ms: u64) -> Self {
        Error::Timeout {
            message: format!(
                "the call did not finish within queryTimeoutMs ({ms} ms); the database may be \
                 overloaded or unreachable. Retry later"
            ),
            sql_state: None,
            sent: true,
            own_limit: false,
        }
    }

    /// A call that ran out of its `queryTimeoutMs` before its statement was sent: it
    /// certainly took no effect.
    pub fn timed_out_unsent(ms: u64) -> Self {
        Error::Timeout {
            message: format!(
                "the call did not finish within queryTimeoutMs ({ms} ms) and was never sent; \
                 the database may be overloaded or unreachable. Retry later"
            ),
            sql_state: None,
            sent: false,
            own_limit: false,
        }
    }

    /// No connection was free within the deadline (the pool's, or a JS client's own).
    pub fn no_free_connection(ms: u64) -> Self {
        Error::Connection {
            message: format!(
                "no connection of the pool was free within queryTimeoutMs ({ms} ms); the \
                 pool is exhausted (raise poolSize, or the database is slow)"
            ),
            sql_state: None,
            retryable: true,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::StreamExists(_) => "STREAM_EXISTS",
            Error::StreamNotActive(_) => "STREAM_NOT_ACTIVE",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::InvalidOption(_) => "INVALID_OPTION",
            Error::Closed => "STORE_CLOSED",
            Error::Database { .. } => "DATABASE_ERROR",
            Error::Connection { .. } | Error::Lost { .. } => "CONNECTION_ERROR",
            Error::Client(_) => "CLIENT_ERROR",
            Error::MalformedResult(_) => "MALFORMED_RESULT",
            Error::Timeout { .. } => "QUERY_TIMEOUT",
            Error::Overloaded(_) => "OVERLOADED",
            Error::WentBack { .. } => "STREAM_WENT_BACK",
        }
    }

    /// Whether the same call may succeed later as it is: the database was away, full or
    /// too slow. Never for a configuration that refuses (authentication, a missing
    /// database) or a statement that is wrong.
    pub fn retryable(&self) -> bool {
        match self {
            Error::Connection { retryable, .. } => *retryable,
            Error::Lost { .. } | Error::Timeout { .. } | Error::Overloaded(_) => true,
            Error::Database { sql_state, .. } => {
                sql_state == SqlState::T_R_SERIALIZATION_FAILURE.code()
                    || sql_state == SqlState::T_R_DEADLOCK_DETECTED.code()
                    // A node that became read-only (a failover): a new connection reaches
                    // the writable one.
                    || sql_state == SqlState::READ_ONLY_SQL_TRANSACTION.code()
            }
            _ => false,
        }
    }

    pub fn sql_state(&self) -> Option<&str> {
        match self {
            Error::Database { sql_state, .. } => Some(sql_state),
            Error::Connection { sql_state, .. }
            | Error::Lost { sql_state, .. }
            | Error::Timeout { sql_state, .. } => sql_state.as_deref(),
            _ => None,
        }
    }

    /// Whether the connection that gave this error must not be used again: it broke, or
    /// a statement on it may still be running.
    pub fn spoils_connection(&self) -> bool {
        self.read_only()
            || matches!(
                self,
                Error::Lost { .. }
                    | Error::Timeout {
                        sql_state: None,
                        ..
                    }
            )
    }

    /// Whether the statement was refused because its connection is on a read-only node
    /// (25006: a standby, or a writer that failed over and came back as a reader). It did
    /// not take effect; a new connection may reach the writable node.
    pub fn read_only(&self) -> bool {
        matches!(self, Error::Database { sql_state, .. }
            if sql_state == SqlState::READ_ONLY_SQL_TRANSACTION.code())
    }

    /// Whether the server stopped the statement by its own time limit (`statement_timeout`,
    /// `lock_timeout`), not at the store's request: retrying within the call won't help.
    pub fn own_limit(&self) -> bool {
        matches!(
            self,
            Error::Timeout {
                own_limit: true,
                ..
            }
        )
    }

    /// The same error, known to come from a cancel this store sent itself (its deadline):
    /// not the server's own limit.
    pub fn cancelled_by_store(self) -> Self {
        match self {
            Error::Timeout {
                message,
                sql_state,
                sent,
                ..
            } => Error::Timeout {
                message,
                sql_state,
                sent,
                own_limit: false,
            },
            other => other,
        }
    }

    /// Whether the statement may have taken effect although the call failed: the
    /// connection broke while it ran, or this side stopped waiting for it. An append
    /// settles that itself (`index.cjs`); nothing else needs to.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Error::Lost { .. }
                | Error::Timeout {
                    sql_state: None,
                    sent: true,
                    ..
                }
        )
    }
}

#[cfg(test)]
mod tests;
