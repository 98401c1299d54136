//! The pool's connections (`Conns`) and how a statement gets one: within the connection
//! budget (`budget.rs`), by the call's deadline, and how a connection whose statement
//! timed out or broke is dropped (cancelled on the server first).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{HookError, Object, Pool, PoolError};
use tokio::time::{sleep, sleep_until, timeout_at, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::budget::{self, Budget, GROW_AFTER};
use super::execute::run;
use super::pooler::Mode;
use super::writable::{refused_read_write, ReadOnly};
use crate::backend::rows::{Param, Row};
use crate::backend::stats::Counters;
use crate::error::{Error, Result};
use crate::sql::Statement;
use crate::telemetry;

/// Most time the check of an idle connection may take (and a fifth of the time a cancel
/// request may take).
pub(super) const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The pool's connections and how statements run on them: cheap to clone, shared with
/// the shared check's task (`mod.rs`) and the notifier (`notifier.rs`).
#[derive(Clone)]
pub struct Conns {
    pub(super) pool: Pool,
    /// Where connections go (`host:port`), for errors that do not say.
    pub(super) target: Arc<str>,
    pub(super) tls: MakeRustlsConnect,
    pub(super) size: usize,
    pub(super) query_timeout: Duration,
    pub(super) idle_timeout: Option<Duration>,
    pub(super) mode: Arc<Mode>,
    pub(super) budget: Arc<Budget>,
    pub counters: Arc<Counters>,
    /// Whether the task that closes idle connections runs.
    pub(super) reaping: Arc<std::sync::atomic::AtomicBool>,
    /// Where connections go, as telemetry records say (`telemetry.rs`).
    pub(super) telemetry: Arc<telemetry::Target>,
}

/// Whether opening a connection failed because the server (or the pooler) is full.
fn full(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        db.code() == &SqlState::TOO_MANY_CONNECTIONS || db.message().contains("max_client_conn")
    })
}

impl Conns {
    /// The most connections the pool opens.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The deadline of a call made now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.query_timeout
    }

    /// The deadline of a call made now that must be done `within` (at most the pool's).
    pub fn deadline_within(&self, within: Option<Duration>) -> Instant {
        Instant::now() + within.map_or(self.query_timeout, |w| w.min(self.query_timeout))
    }

    pub fn query_timeout_ms(&self) -> u64 {
        self.query_timeout.as_millis() as u64
    }

    /// A connection by `deadline`, within the budget (`budget.rs`): an idle one, else a
    /// new one if the pool may open it, else the next one given back. A server that
    /// refuses a connection as full (53300) is waited out, not reported.
    async fn connection(&self, deadline: Instant) -> Result<Object> {
        if !telemetry::enabled() {
            return self.connection_by(deadline).await;
        }
        let start = telemetry::now();
        let opened = self.pool.status().available == 0;
        let got = self.connection_by(deadline).await;
        let mut r = telemetry::record("checkout", start, &self.telemetry);
        r.detail = opened.then(|| "opened".into());
        if let Err(err) = &got {
            telemetry::failed(&mut r, err);
            // No connection was free by the deadline (the pool is full).
            if self.pool.status().size > 0 && err.code() == "CONNECTION_FAILED" {
                r.detail = Some("timeout".into());
            }
        }
        telemetry::send(r);
        got
    }

    async fn connection_by(&self, deadline: Instant) -> Result<Object> {
        self.reap_idle();
        let budget = &self.budget;
        let _waiting = budget::Waiting::new(&budget.waiting);
        // The last refusal, reported if the deadline passes without a connection.
        let mut refusal = None;
        loop {
            // Registered before looking, so that a connection given back meanwhile wakes it.
            let returned = budget.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            let status = self.pool.status();
            let open = status.available > 0 || budget.may_open(status.size);
            if open {
                let opening = status.available == 0;
                if opening {
                    budget.opening.fetch_add(1, Ordering::AcqRel);
                }
                let start = (opening && telemetry::enabled()).then(telemetry::now);
                let got = timeout_at(deadline, self.pool.get()).await;
                if let Some(start) = start {
                    let mut r = telemetry::record("connect", start, &self.telemetry);
                    if !matches!(got, Ok(Ok(_))) {
                        r.code = Some("CONNECTION_FAILED".into());
                    }
                    telemetry::send(r);
                }
                if opening {
                    budget.opening.fetch_sub(1, Ordering::AcqRel);
                }
                match got {
                    Ok(Ok(client)) => return Ok(client),
                    Ok(Err(PoolError::Backend(e)))
                    | Ok(Err(PoolError::PostCreateHook(HookError::Backend(e)))) => {
                        if !full(&e) {
                            return Err(Error::from_connect(e).connecting_to(&self.target));
                        }
                        // The server is full: wait for a connection the pool has, or
                        // (holding none) try again after a back-off, by the deadline.
                        budget.refused(self.pool.status().size);
                        refusal = Some(e);
                        continue;
                    }
                    Ok(Err(PoolError::Closed)) => return Err(Error::Closed),
                    Ok(Err(PoolError::Timeout(_))) | Err(_) => {
                        return Err(self.no_connection(refusal))
                    }
                    Ok(Err(other)) => {
                        return Err(Error::Connection {
                            message: other.to_string(),
                            sql_state: None,
                            retryable: true,
                        })
                    }
                }
            }
            tokio::select! {
                _ = returned => {}
                _ = sleep(GROW_AFTER) => {
                    // May let the pool open one more (the loop's next turn opens it).
                    budget.waited();
                }
                _ = sleep_until(deadline) => return Err(self.no_connection(refusal)),
            }
        }
    }

    fn no_connection(&self, refusal: Option<tokio_postgres::Error>) -> Error {
        let status = self.pool.status();
        if let (0, Some(refusal)) = (status.size, refusal) {
            return Error::from_connect(refusal).connecting_to(&self.target);
        }
        if status.size > 0 {
            Error::no_free_connection(self.query_timeout_ms())
        } else {
            Error::Connection {
                message: format!(
                    "opening a connection took longer than queryTimeoutMs ({} ms); is \
                     PostgreSQL reachable?",
                    self.query_timeout_ms()
                ),
                sql_state: None,
                retryable: true,
            }
        }
    }

    /// Starts the task that closes connections idle for `idleTimeoutMs`, unless it runs.
    fn reap_idle(&self) {
        let Some(idle) = self.idle_timeout else {
            return;
        };
        if self.reaping.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, budget) = (self.pool.weak(), self.budget.clone());
        let tick = (idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        tokio::spawn(async move {
            loop {
                sleep(tick).await;
                let Some(pool) = pool.upgrade().filter(|p| !p.is_closed()) else {
                    return;
                };
                let closed = pool.retain(|_, metrics| metrics.last_used() < idle);
                if !closed.removed.is_empty() {
                    budget.shrunk(pool.status().size);
                }
            }
        });
    }

    /// Runs one statement on a pooled connection by `deadline`: prepared once per
    /// connection, or unnamed in a transaction of its own behind a transaction pooler
    /// (`pooler.rs`). A connection on which the statement timed out or broke is dropped,
    /// and a timed-out statement is cancelled on the server.
    pub async fn query(
        &self,
        statement: &Statement,
        params: &[Param],
        deadline: Instant,
    ) -> Result<Vec<Row>> {
        self.query_on(statement, params, deadline, false).await
    }

    /// `query` for a statement that must run on a writable node (a NOTIFY: on a read-only
    /// one it would reach only that node's listeners). Its text sets
    /// `transaction_read_only` off, which a read-only session refuses (25001): that
    /// counts as a read-only node's 25006 (the connection is dropped, the call tried again).
    pub async fn query_writable(
        &self,
        statement: &Statement,
        params: &[Param],
        deadline: Instant,
    ) -> Result<Vec<Row>> {
        self.query_on(statement, params, deadline, true).await
    }

    async fn query_on(
        &self,
        statement: &Statement,
        params: &[Param],
        deadline: Instant,
        writable: bool,
    ) -> Result<Vec<Row>> {
        let mut switched = false;
        let mut read_only = ReadOnly::default();
        loop {
            let client = Lent(Some(self.connection(deadline).await?), &self.budget);
            // Too little time left to hear back: not sent at all, so it certainly did not
            // take effect (rather than sent and maybe committed after the caller gave up).
            if deadline.saturating_duration_since(Instant::now()) < self.query_timeout / 20 {
                return Err(Error::timed_out_unsent(self.query_timeout_ms()));
            }
            Counters::add(&self.counters.statements);
            let begin = self.mode.transaction().then(|| self.mode.begin());
            let start = telemetry::enabled().then(telemetry::now);
            let (outcome, cancel_sent) = self
                .run_by(client.get(), statement, params, begin, deadline)
                .await;
            if let Some(start) = start {
                let target = &self.telemetry;
                telemetry::round_trip(&statement.text, start, target, outcome.as_ref().err());
            }
            let outcome = if writable {
                outcome.map_err(refused_read_write)
            } else {
                outcome
            };
            if cancel_sent {
                // The cancel request travels on a connection of its own and may reach
                // the server only after the statement ended: on this connection it could
                // then stop the next, unrelated statement. So this one is not used again.
                match &outcome {
                    Err(err) if err.spoils_connection() => self.discard(client, false),
                    _ => self.retire(client),
                }
                return outcome;
            }
            let Err(err) = &outcome else { return outcome };
            // A named statement went missing or collided: a transaction pooler is in
            // between. It never ran: send it again, unnamed.
            let again = !switched && self.mode.pooler_error(err);
            if err.spoils_connection() {
                self.discard(client, matches!(err, Error::Lost { .. }) && !again);
            }
            // On a read-only node (a failover): it did not run; again on a new connection.
            if err.read_only() && read_only.again(deadline, self.query_timeout).await {
                continue;
            }
            if !again {
                return outcome;
            }
            switched = true;
        }
    }

    /// Runs the statement on `client` by `deadline`, then settles it (see below); also
    /// says whether a cancel request was sent for it.
    async fn run_by(
        &self,
        client: &Object,
        statement: &Statement,
        params: &[Param],
        begin: Option<String>,
        deadline: Instant,
    ) -> (Result<Vec<Row>>, bool) {
        // The last tenth of the time (at least 100 ms, or half of it when it is short) is
        // kept to settle a statement still running then: the server is asked to cancel
        // it, and its own answer is awaited until the deadline. Then its outcome is
        // certain: cancelled (57014), or done after all. Only a connection that does not
        // answer even then (a dead network) leaves it unknown, and is dropped.
        let left = deadline.saturating_duration_since(Instant::now());
        let settle = (left / 10).max((left / 2).min(Duration::from_millis(100)));
        let running = run(client, statement, params, begin);
        tokio::pin!(running);
        match timeout_at(deadline - settle, &mut running).await {
            Ok(outcome) => (outcome, false),
            Err(_) => {
                let cancel = client.cancel_token();
                let tls = self.tls.clone();
                let settled = timeout_at(deadline, async {
                    let _ = cancel.cancel_query(tls).await;
                    (&mut running).await
                })
                .await;
                match settled {
                    // A 57014 now is this cancel's, not the server's own limit.
                    Ok(outcome) => (outcome.map_err(Error::cancelled_by_store), true),
                    Err(_) => (Err(Error::timed_out(self.query_timeout_ms())), true),
                }
            }
        }
    }

    /// Drops one connection that must not be used again, keeping the others.
    fn retire(&self, mut client: Lent<'_>) {
        if let Some(client) = client.0.take() {
            drop(Object::take(client));
            self.budget.returned.notify_one();
        }
    }

    /// Drops a connection that must not be used again; `cancel`: a statement on it may
    /// still run, so the server is asked to cancel it. Idle connections go too: the
    /// network that broke this one has likely broken them.
    fn discard(&self, mut client: Lent<'_>, cancel: bool) {
        let Some(client) = client.0.take() else {
            return;
        };
        if cancel {
            let token = client.cancel_token();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CHECK_TIMEOUT * 5, token.cancel_query(tls)).await;
            });
        }
        drop(Object::take(client));
        self.pool.retain(|_, _| false);
        self.budget.returned.notify_one();
    }
}

/// A connection lent to one call: given back (and a waiting call told) when dropped.
struct Lent<'a>(Option<Object>, &'a Budget);

impl Lent<'_> {
    fn get(&self) -> &Object {
        self.0.as_ref().expect("lent until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if self.0.take().is_some() {
            self.1.returned.notify_one();
        }
    }
}
