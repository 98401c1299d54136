//! Every error a user can see, each with a stable code.
//!
//! napi-rs can only give a JS error a code from its own `Status` list, so the code (and a
//! database error's SQLSTATE) travel in the message, separated by a unit separator
//! (U+001F); `index.js` turns that into `err.code` / `err.sqlState` on a plain `Error`
//! whose message is the human part alone.

use std::fmt;

const SEP: char = '\u{1f}';

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
    #[error("{message}")]
    Database {
        message: String,
        sql_state: Option<String>,
    },
    #[error("could not connect to PostgreSQL: {message}")]
    Connection {
        message: String,
        sql_state: Option<String>,
    },
    /// The caller's `query` function threw or rejected.
    #[error("{message}")]
    Client {
        message: String,
        sql_state: Option<String>,
    },
    /// The caller's `query` function resolved to something that is not `{ rows: [...] }`,
    /// or rows without the columns asked for.
    #[error("{0}")]
    MalformedResult(String),
    /// A statement did not finish within `queryTimeoutMs`.
    #[error("{0}")]
    Timeout(String),
}

/// SQLSTATEs that mean the connection or the server went away, not that the statement
/// was wrong: class 08 (connection exception), and the server shutting down or starting.
pub fn connection_lost(sql_state: &str) -> bool {
    sql_state.starts_with("08") || matches!(sql_state, "57P01" | "57P02" | "57P03")
}

/// The message of a statement that ran out of time.
pub fn timed_out(ms: u64) -> Error {
    Error::Timeout(format!(
        "the statement did not finish within queryTimeoutMs ({ms} ms); the database may be \
         overloaded or unreachable. Retry later; an append that timed out may or may not \
         have been stored (getStatus() tells its chunk count)"
    ))
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::StreamExists(_) => "STREAM_EXISTS",
            Error::StreamNotActive(_) => "STREAM_NOT_ACTIVE",
            Error::InvalidArgument(_) => "INVALID_ARGUMENT",
            Error::InvalidOption(_) => "INVALID_OPTION",
            Error::Closed => "STORE_CLOSED",
            Error::Database { .. } => "DATABASE_ERROR",
            Error::Connection { .. } => "CONNECTION_ERROR",
            Error::Client {
                sql_state: Some(state),
                ..
            } if connection_lost(state) => "CONNECTION_ERROR",
            Error::Client {
                sql_state: Some(_), ..
            } => "DATABASE_ERROR",
            Error::Client { .. } => "CLIENT_ERROR",
            Error::MalformedResult(_) => "MALFORMED_RESULT",
            Error::Timeout(_) => "QUERY_TIMEOUT",
        }
    }

    fn sql_state(&self) -> Option<&str> {
        match self {
            Error::Database { sql_state, .. }
            | Error::Client { sql_state, .. }
            | Error::Connection { sql_state, .. } => sql_state.as_deref(),
            _ => None,
        }
    }

    pub fn invalid_argument(message: impl fmt::Display) -> Self {
        Error::InvalidArgument(message.to_string())
    }
}

impl Error {
    fn connection(message: impl Into<String>) -> Self {
        Error::Connection {
            message: message.into(),
            sql_state: None,
        }
    }

    /// A failure while opening a connection: refused, timed out, TLS, authentication.
    fn from_connect(err: tokio_postgres::Error) -> Self {
        if let Some(db) = err.as_db_error() {
            return Error::Connection {
                message: db.message().to_string(),
                sql_state: Some(db.code().code().to_string()),
            };
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
        Error::connection(message)
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => {
                let mut message = db.message().to_string();
                if let Some(detail) = db.detail() {
                    message.push_str(": ");
                    message.push_str(detail);
                }
                let sql_state = Some(db.code().code().to_string());
                if db.code().code() == "57014" && db.message().contains("statement timeout") {
                    return Error::Timeout(format!(
                        "the server stopped the statement at its statement_timeout \
                         (queryTimeoutMs); the database may be overloaded. Retry later; an \
                         append that timed out was not stored ({message})"
                    ));
                }
                if connection_lost(db.code().code()) {
                    Error::Connection { message, sql_state }
                } else {
                    Error::Database { message, sql_state }
                }
            }
            None if err.is_closed() => Error::connection("the connection to PostgreSQL was closed"),
            None => Error::connection(err.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(e) => Error::from_connect(e),
            deadpool_postgres::PoolError::Timeout(_) => Error::connection(
                "timed out waiting for a connection from the pool (is PostgreSQL reachable?)",
            ),
            deadpool_postgres::PoolError::Closed => Error::Closed,
            other => Error::connection(other.to_string()),
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
        let state = err.sql_state().unwrap_or("").to_string();
        napi::Error::new(
            napi::Status::GenericFailure,
            format!("{}{SEP}{state}{SEP}{err}", err.code()),
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_messages_are_word_for_word() {
        assert_eq!(
            Error::StreamExists("a b".into()).to_string(),
            "Stream \"a b\" already exists"
        );
        assert_eq!(
            Error::StreamNotActive("x".into()).to_string(),
            "Stream \"x\" not found or not active"
        );
    }

    #[test]
    fn code_and_sql_state_travel_in_the_napi_message() {
        let err: napi::Error = Error::Database {
            message: "relation \"nope\" does not exist".into(),
            sql_state: Some("42P01".into()),
        }
        .into();
        assert_eq!(
            err.reason,
            "DATABASE_ERROR\u{1f}42P01\u{1f}relation \"nope\" does not exist"
        );
        let err: napi::Error = Error::StreamExists("s".into()).into();
        assert_eq!(
            err.reason,
            "STREAM_EXISTS\u{1f}\u{1f}Stream \"s\" already exists"
        );
    }

    #[test]
    fn a_server_going_away_is_a_connection_error() {
        for state in ["57P01", "08006", "57P03"] {
            let err = Error::Client {
                message: "m".into(),
                sql_state: Some(state.into()),
            };
            assert_eq!(err.code(), "CONNECTION_ERROR", "{state}");
        }
        assert_eq!(timed_out(5).code(), "QUERY_TIMEOUT");
        assert!(timed_out(5).to_string().contains("5 ms"));
    }

    #[test]
    fn client_errors_with_a_sql_state_are_database_errors() {
        let with = Error::Client {
            message: "m".into(),
            sql_state: Some("23505".into()),
        };
        let without = Error::Client {
            message: "m".into(),
            sql_state: None,
        };
        assert_eq!(with.code(), "DATABASE_ERROR");
        assert_eq!(without.code(), "CLIENT_ERROR");
    }
}
