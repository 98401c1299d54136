//! Failovers: a connection on a read-only node (a standby, or a writer that failed over
//! and came back as a reader) is never used to write. `Conns::query` drops one whose
//! statement was refused (25006) and sends it again on a new connection (`ReadOnly`); a
//! NOTIFY is refused there too (`refused_read_write`); the listener LISTENs only on a
//! writable node and leaves one that became read-only (`listen_if_writable`,
//! `still_writable`); an idle connection is checked before reuse (`read_only`, `mod.rs`).

use std::time::Duration;

use tokio::time::{sleep_until, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::Error;

/// How often a listening connection checks that its node is still writable.
const WRITABLE_CHECK: Duration = Duration::from_secs(1);
/// After a read-only node refused the listener, it tries again after this.
pub(super) const READ_ONLY_RETRY: Duration = Duration::from_millis(200);

/// Whether the answer to `SHOW transaction_read_only` says the session is read-only.
pub(super) fn read_only(answer: &[SimpleQueryMessage]) -> bool {
    answer.iter().any(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0) == Some("on"),
        _ => false,
    })
}

/// A session that refused to become read-write (25001 from `set_config(
/// 'transaction_read_only', 'off', true)` in a read-only transaction) as a 25006.
pub(super) fn refused_read_write(err: Error) -> Error {
    match err {
        Error::Database { message, sql_state } if sql_state == "25001" => Error::Database {
            message: format!("{message} (the connection is on a read-only node)"),
            sql_state: SqlState::READ_ONLY_SQL_TRANSACTION.code().into(),
        },
        other => other,
    }
}

/// Tries of a statement refused by a read-only node (25006), each on a new connection
/// (`discard` dropped the idle ones): after a failover the address soon leads to the
/// writable node. A short back-off, within the call's deadline and `READ_ONLY_PATIENCE`.
#[derive(Default)]
pub(super) struct ReadOnly {
    since: Option<Instant>,
    backoff: Duration,
}

/// How long a call keeps trying to reach a writable node before it reports the 25006.
const READ_ONLY_PATIENCE: Duration = Duration::from_secs(3);

impl ReadOnly {
    /// Waits the back-off and returns true if the statement should be tried again.
    pub(super) async fn again(&mut self, deadline: Instant, query_timeout: Duration) -> bool {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        self.backoff =
            (self.backoff * 2).clamp(Duration::from_millis(10), Duration::from_millis(200));
        let at = now + self.backoff;
        // Enough time left after the back-off for the statement to run and settle.
        if at + query_timeout / 5 > deadline || at > since + READ_ONLY_PATIENCE {
            return false;
        }
        sleep_until(at).await;
        true
    }
}

/// How a LISTEN attempt went.
pub(super) enum Listened {
    Yes,
    /// The node is read-only: LISTEN there would hear none of the writers.
    ReadOnly,
    No,
}

/// Sends `listen` (the LISTEN command) unless the session is read-only.
pub(super) async fn listen_if_writable(client: &Client, listen: &str) -> Listened {
    let listened = async {
        if read_only(&client.simple_query("SHOW transaction_read_only").await?) {
            return Ok(false);
        }
        client.batch_execute(listen).await.map(|()| true)
    };
    match listened.await {
        Ok(true) => Listened::Yes,
        Ok(false) => Listened::ReadOnly,
        // LISTEN on a standby: "cannot execute LISTEN during recovery".
        Err(e) if e.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) => Listened::ReadOnly,
        Err(_) => Listened::No,
    }
}

/// Resolves once the listening connection's node is read-only (a failover left it on the
/// old writer, now a reader): writers notify on the writable node, not there.
/// `listen`, the LISTEN command, is sent again after each check (a no-op), so that the
/// connection's last statement, as `pg_stat_activity` shows it, stays the LISTEN.
pub(super) async fn still_writable(client: &Client, listen: &str) {
    loop {
        tokio::time::sleep(WRITABLE_CHECK).await;
        let check = async {
            let answer = client.simple_query("SHOW transaction_read_only").await?;
            client.batch_execute(listen).await.map(|()| answer)
        };
        if let Ok(Ok(answer)) = tokio::time::timeout(WRITABLE_CHECK * 2, check).await {
            if read_only(&answer) {
                return;
            }
        }
    }
}
