//! Classifying errors: a database error by its SQLSTATE alone (whichever driver reported
//! it), a failure to connect or a lost connection by what failed.

use tokio_postgres::error::SqlState;

use super::Error;

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
    /// An error PostgreSQL reported, classified by its SQLSTATE alone. `at_connect`: it
    /// came while opening the session (nothing ran), not while a statement ran.
    pub fn from_server(state: &str, message: String, at_connect: bool) -> Self {
        let sql_state = Some(state.to_string());
        // Stopped by the server: unless the store sent the cancel itself (then it is
        // `cancelled_by_store`), by the server's own limit.
        if state == SqlState::QUERY_CANCELED.code() {
            return Error::Timeout {
                message: format!(
                    "the server stopped the statement ({message}): it ran past its \
                     statement_timeout (queryTimeoutMs) or was cancelled; it did not take \
                     effect. Retry later"
                ),
                sql_state,
                sent: true,
                own_limit: true,
            };
        }
        if state == SqlState::LOCK_NOT_AVAILABLE.code() {
            return Error::Timeout {
                message: format!(
                    "the server stopped the statement ({message}): it waited for a lock past \
                     its lock_timeout; it did not take effect. Retry later"
                ),
                sql_state,
                sent: true,
                own_limit: true,
            };
        }
        if state == SqlState::READ_ONLY_SQL_TRANSACTION.code() {
            return Error::Database {
                message: format!(
                    "{message} (the connection is on a read-only node: a standby, or a \
                     writer that failed over; connections to the writable node are opened \
                     instead. Retry)"
                ),
                sql_state: state.to_string(),
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
