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

use std::fmt;

use tokio_postgres::error::SqlState;

/// Marks a napi error message that carries a store error as JSON.
const MARK: char = '\u{1f}';

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
    /// A call did not finish within `queryTimeoutMs`, or the server stopped it (57014).
    /// `sent`: its statement had gone to the server (and may yet take effect, unless the
    /// server itself stopped it).
    #[error("{message}")]
    Timeout {
        message: String,
        sql_state: Option<String>,
        sent: bool,
    },
    /// A queue of the store is full: the database is not keeping up with the calls.
    #[error("{0}")]
    Overloaded(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// SQLSTATEs of a session that went away, not of a statement that was wrong: class 08
/// (connection exception) and the server shutting down or starting.
fn session_lost(state: &str) -> bool {
    state.starts_with("08")
        || state == SqlState::ADMIN_SHUTDOWN.code()
        || state == SqlState::CRASH_SHUTDOWN.code()
        || state == SqlState::CANNOT_CONNECT_NOW.code()
}

/// SQLSTATEs that refuse the session for good until someone changes the configuration:
/// authentication (class 28) and a database that does not exist.
fn refused_for_good(state: &str) -> bool {
    state.starts_with("28") || state == SqlState::INVALID_CATALOG_NAME.code()
}

/// A session refused for a reason of configuration that a pooler reports (as 08P01,
/// which otherwise means a connection that broke): the fix, if so.
fn misconfigured(state: &str, message: &str) -> Option<&'static str> {
    if state != SqlState::PROTOCOL_VIOLATION.code() {
        return None;
    }
    if message.contains("unsupported startup parameter") {
        return Some(
            "a pooler in between refuses a startup parameter: take `options` (and any other \
             server setting) out of the connection string, or list it in the pooler's \
             ignore_startup_parameters; queryTimeoutMs reaches the server without it",
        );
    }
    if message.contains("no such database") || message.contains("no such user") {
        return Some("the pooler does not know this database or user: check its configuration");
    }
    None
}

impl Error {
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

    /// An error PostgreSQL reported, classified by its SQLSTATE alone. `at_connect`: it
    /// came while opening the session (nothing ran), not while a statement ran.
    pub fn from_server(state: &str, message: String, at_connect: bool) -> Self {
        let sql_state = Some(state.to_string());
        if state == SqlState::QUERY_CANCELED.code() {
            return Error::Timeout {
                message: format!(
                    "the server stopped the statement ({message}): it ran past its \
                     statement_timeout (queryTimeoutMs) or was cancelled; it did not take \
                     effect. Retry later"
                ),
                sql_state,
                sent: true,
            };
        }
        if refused_for_good(state) {
            return Error::Connection {
                message: format!("{message} (check the user, password and database name)"),
                sql_state,
                retryable: false,
            };
        }
        if let Some(fix) = at_connect.then(|| misconfigured(state, &message)).flatten() {
            return Error::Connection {
                message: format!("{message} ({fix})"),
                sql_state,
                retryable: false,
            };
        }
        if state == SqlState::TOO_MANY_CONNECTIONS.code() {
            return Error::Connection {
                message: format!(
                    "{message} (the server is at max_connections; lower poolSize, or put a \
                     pooler in front)"
                ),
                sql_state,
                retryable: true,
            };
        }
        if session_lost(state) {
            return if at_connect {
                Error::Connection {
                    message,
                    sql_state,
                    retryable: true,
                }
            } else {
                Error::Lost { message, sql_state }
            };
        }
        Error::Database {
            message,
            sql_state: state.to_string(),
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
        matches!(
            self,
            Error::Lost { .. }
                | Error::Timeout {
                    sql_state: None,
                    ..
                }
        )
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

    /// The JSON that crosses into JS (see the module's doc).
    fn to_json(&self) -> String {
        let mut out = serde_json::json!({
            "code": self.code(),
            "message": self.to_string(),
            "retryable": self.retryable(),
        });
        if self.outcome_unknown() {
            out["unknown"] = true.into();
        }
        if let Some(state) = self.sql_state() {
            out["sqlState"] = state.into();
        }
        out.to_string()
    }

    /// A failure while opening a connection: refused, timed out, TLS, authentication.
    pub fn from_connect(err: tokio_postgres::Error) -> Self {
        if let Some(db) = err.as_db_error() {
            return Error::from_server(db.code().code(), db.message().to_string(), true);
        }
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if message.contains("TLS") || message.contains("certificate") {
            message.push_str(
                " (check sslmode and sslrootcert in the connection string: verify-full needs \
                 the server's certificate to chain to sslrootcert and name the host)",
            );
        }
        Error::Connection {
            message,
            sql_state: None,
            retryable: true,
        }
    }
}

/// An error of a statement on an open connection (tokio-postgres).
impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => {
                let mut message = db.message().to_string();
                if let Some(detail) = db.detail() {
                    message.push_str(": ");
                    message.push_str(detail);
                }
                Error::from_server(db.code().code(), message, false)
            }
            None => Error::Lost {
                message: if err.is_closed() {
                    "the connection was closed".into()
                } else {
                    err.to_string()
                },
                sql_state: None,
            },
        }
    }
}

/// A napi call failed while reading what the client's `query` returned.
impl From<napi::Error> for Error {
    fn from(err: napi::Error) -> Self {
        Error::MalformedResult(format!(
            "could not read the client's query result: {}",
            err.reason
        ))
    }
}

impl From<Error> for napi::Error {
    fn from(err: Error) -> Self {
        napi::Error::new(
            napi::Status::GenericFailure,
            format!("{MARK}{}", err.to_json()),
        )
    }
}

#[cfg(test)]
mod tests;
