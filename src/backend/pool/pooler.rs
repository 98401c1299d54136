//! Running statements behind a connection pooler (PgBouncer, Supavisor, Neon's pooler).
//!
//! A pooler in **transaction** mode hands each transaction whichever server connection is
//! free, so nothing may outlive a transaction: no named prepared statements (tokio-
//! postgres names its own `s0`, `s1`, ... in every process alike, so they would be
//! missing, duplicate, or another process's), no session `SET`. There a statement goes
//! out unnamed (`query_typed`: Parse/Bind/Execute in one round trip), and the server-side
//! limit is `SET LOCAL statement_timeout` in a transaction of its own, pipelined with it:
//! `BEGIN; SET LOCAL ...`, the statement, `COMMIT`, still one round trip.
//!
//! Directly connected (or behind a **session** pooler, which gives the client one server
//! session for its whole connection) statements are prepared once per connection and
//! `statement_timeout` is set once when the connection opens.
//!
//! **Auto** (the default) tells them apart without configuration: each new connection
//! compares the backend process id the server reports (`pg_backend_pid()`) with the one
//! it was given at startup (BackendKeyData). A pooler answers the startup itself, so the
//! two differ behind one; the pool then runs as behind a transaction pooler (the safe
//! choice, as session and transaction mode look alike). The `SET` of the timeout is in
//! the same statement and takes effect only when they match. A pooler that passes the
//! process id through is caught at its first 26000 / 42P05 / "bind message supplies"
//! error: the pool switches and the statement is sent again (it never ran).

use std::sync::atomic::{AtomicU8, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::backend::rows::Param;
use crate::error::{Error, Result};

/// The `pooler` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pooler {
    Auto,
    None,
    Session,
    Transaction,
}

impl Pooler {
    pub fn parse(value: Option<&str>) -> Result<Self> {
        Ok(match value {
            None | Some("auto") => Pooler::Auto,
            Some("none") => Pooler::None,
            Some("session") => Pooler::Session,
            Some("transaction") => Pooler::Transaction,
            Some(other) => {
                return Err(Error::InvalidOption(format!(
                    "option \"pooler\" must be \"auto\", \"transaction\", \"session\" or \"none\", \
                     got \"{other}\""
                )))
            }
        })
    }
}

/// Connections the server can spare beyond its reserved slots and a tenth of
/// `max_connections` kept free (for other clients, and against races between processes).
pub const SPARE: &str = "(SELECT current_setting('max_connections')::int - count(*) \
    - current_setting('superuser_reserved_connections')::int \
    - coalesce(current_setting('reserved_connections', true)::int, 0) \
    - greatest(2, current_setting('max_connections')::int / 10) \
    FROM pg_stat_activity WHERE backend_type = 'client backend')";

const UNKNOWN: u8 = 0;
const DIRECT: u8 = 1;
const TRANSACTION: u8 = 2;

/// How a pool's statements run: the configured `pooler` and, for `auto`, what was found.
#[derive(Debug)]
pub struct Mode {
    configured: Pooler,
    found: AtomicU8,
    statement_timeout_ms: u64,
}

impl Mode {
    pub fn new(configured: Pooler, statement_timeout_ms: u64) -> Self {
        Mode {
            configured,
            found: AtomicU8::new(UNKNOWN),
            statement_timeout_ms,
        }
    }

    /// Whether statements must not outlive their transaction.
    pub fn transaction(&self) -> bool {
        match self.configured {
            Pooler::Transaction => true,
            Pooler::Auto => self.found.load(Ordering::Acquire) == TRANSACTION,
            _ => false,
        }
    }

    /// The mode as `stats()` reports it.
    pub fn describe(&self) -> &'static str {
        match (self.configured, self.found.load(Ordering::Acquire)) {
            (Pooler::Transaction, _) => "transaction",
            (Pooler::Session, _) => "session",
            (Pooler::None, _) => "none",
            (Pooler::Auto, TRANSACTION) => "transaction (detected)",
            (Pooler::Auto, DIRECT) => "none (detected)",
            (Pooler::Auto, _) => "auto",
        }
    }

    /// A statement failed in a way only a transaction pooler causes: from now on the pool
    /// runs as behind one. True if this changed the mode (the caller then sends the
    /// statement again: it never ran).
    pub fn pooler_error(&self, err: &Error) -> bool {
        if self.configured != Pooler::Auto || self.transaction() {
            return false;
        }
        let named_statement_lost = matches!(err.sql_state(), Some("26000" | "42P05"))
            || (err.sql_state() == Some("08P01") && err.to_string().contains("bind message"));
        if named_statement_lost {
            self.found.store(TRANSACTION, Ordering::Release);
        }
        named_statement_lost
    }

    /// Sets up a connection just opened (see the module's doc), in one round trip at
    /// most. Returns how many more connections the server can spare (`budget.rs`), when
    /// asked.
    pub async fn set_up(&self, client: &Client) -> Result<Option<i64>, tokio_postgres::Error> {
        let ms = self.statement_timeout_ms;
        let answer = match self.configured {
            Pooler::Transaction => return Ok(None),
            Pooler::Auto if self.transaction() => return Ok(None),
            Pooler::None | Pooler::Session => {
                client
                    .simple_query(&format!(
                        "SET statement_timeout = {ms}; SELECT true, {SPARE}"
                    ))
                    .await?
            }
            Pooler::Auto => {
                let Some(pid) = startup_pid(client).await else {
                    // Could not tell: take the safe side.
                    self.found.store(TRANSACTION, Ordering::Release);
                    return Ok(None);
                };
                let probe = format!(
                    "SELECT pg_backend_pid() = {pid}, {SPARE}, CASE WHEN pg_backend_pid() = {pid} \
                     THEN set_config('statement_timeout', '{ms}', false) END"
                );
                client.simple_query(&probe).await?
            }
        };
        let row = answer.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        let direct = row.and_then(|r| r.get(0)) == Some("t");
        let spare = row.and_then(|r| r.get(1)).and_then(|v| v.parse().ok());
        if self.configured == Pooler::Auto {
            if direct {
                // Once behind a pooler, always: a direct answer never undoes it.
                let _ = self.found.compare_exchange(
                    UNKNOWN,
                    DIRECT,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            } else {
                self.found.store(TRANSACTION, Ordering::Release);
            }
        }
        Ok(spare)
    }

    /// What starts a statement's own transaction behind a transaction pooler.
    pub fn begin(&self) -> String {
        format!(
            "BEGIN; SET LOCAL statement_timeout = {}",
            self.statement_timeout_ms
        )
    }
}

/// The parameter's type, for an unnamed statement.
pub fn type_of(param: &Param) -> Type {
    match param {
        Param::Text(_) | Param::OptText(_) => Type::TEXT,
        Param::Int(_) | Param::OptInt(_) => Type::INT4,
        Param::BigInt(_) => Type::INT8,
        Param::TextArray(_) | Param::OptTextArray(_) => Type::TEXT_ARRAY,
        Param::IntArray(_) | Param::OptIntArray(_) => Type::INT4_ARRAY,
        Param::BigIntArray(_) => Type::INT8_ARRAY,
    }
}

/// The process id the connection was given at startup (its BackendKeyData), which
/// tokio-postgres keeps only in the cancel token: read back from the cancel request it
/// writes into an in-memory pipe.
async fn startup_pid(client: &Client) -> Option<i32> {
    let token = client.cancel_token();
    let (ours, mut theirs) = tokio::io::duplex(64);
    let write = token.cancel_query_raw(ours, PlainPipe);
    let read = async move {
        let mut bytes = [0u8; 8];
        theirs.read_exact(&mut bytes).await.ok()?;
        // An SSLRequest first (sslmode=require): say yes; `PlainPipe` keeps it plain.
        if bytes == [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f] {
            theirs.write_all(b"S").await.ok()?;
            theirs.read_exact(&mut bytes).await.ok()?;
        }
        let mut key = [0u8; 8];
        theirs.read_exact(&mut key).await.ok()?;
        // length 16, code 80877102, pid, secret
        (bytes == [0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e])
            .then(|| i32::from_be_bytes([key[0], key[1], key[2], key[3]]))
    };
    let both = async { tokio::join!(write, read).1 };
    tokio::time::timeout(std::time::Duration::from_secs(1), both)
        .await
        .ok()
        .flatten()
}

/// A "TLS" that leaves the in-memory pipe of `startup_pid` as it is.
struct PlainPipe;

struct Pipe(tokio::io::DuplexStream);

impl TlsConnect<tokio::io::DuplexStream> for PlainPipe {
    type Stream = Pipe;
    type Error = std::io::Error;
    type Future = std::future::Ready<std::io::Result<Pipe>>;

    fn connect(self, stream: tokio::io::DuplexStream) -> Self::Future {
        std::future::ready(Ok(Pipe(stream)))
    }
}

impl TlsStream for Pipe {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pipe {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_takes_four_values() {
        assert_eq!(Pooler::parse(None).unwrap(), Pooler::Auto);
        assert_eq!(
            Pooler::parse(Some("transaction")).unwrap(),
            Pooler::Transaction
        );
        let err = Pooler::parse(Some("statement")).unwrap_err();
        assert_eq!(err.code(), "INVALID_OPTION");
        assert!(err.to_string().contains("\"pooler\""));
    }

    #[test]
    fn auto_switches_at_a_lost_named_statement_and_stays() {
        let mode = Mode::new(Pooler::Auto, 1000);
        assert!(!mode.transaction());
        let other = Error::from_server("42P01", "no table".into(), false);
        assert!(!mode.pooler_error(&other));
        let lost = Error::from_server(
            "26000",
            "prepared statement \"s3\" does not exist".into(),
            false,
        );
        assert!(mode.pooler_error(&lost));
        assert!(mode.transaction());
        assert!(!mode.pooler_error(&lost), "switched once");
        let fixed = Mode::new(Pooler::None, 1000);
        assert!(!fixed.pooler_error(&lost));
        assert!(!fixed.transaction());
        assert_eq!(mode.describe(), "transaction (detected)");
    }
}
