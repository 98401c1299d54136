//! The Rust backend: a deadpool-postgres pool per connection string, shared by every
//! store in the process, with a cache of prepared statements on each connection (none
//! behind a transaction pooler: `pooler.rs`), its connection budget (`budget.rs`) and its
//! LISTEN/NOTIFY wake-ups (`notify.rs`).
//!
//! The pool heals: a connection whose statement timed out or broke is never used again
//! (a timed-out statement is also cancelled on the server), every idle connection is
//! dropped at such a failure (the network that broke one has likely broken the others),
//! a connection idle for a while is checked before reuse, and TCP keepalive notices a
//! dead peer in seconds, not hours.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, Pool, PoolError, QueueMode, RecyclingMethod,
    Runtime,
};
use tokio::time::{sleep, sleep_until, timeout_at, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Config;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::budget::{self, Budget, Grow, GROW_AFTER};
use super::combine::{Queues, Runner};
use super::conninfo::ConnInfo;
use super::notify::{Notifier, Written};
use super::pooler::{type_of, Mode, Pooler, SPARE};
use super::stats::{read, BackendStats, Counters};
use super::sweep::{Sweeper, Waiter, Waiting};
use super::tls::Tls;
use super::{joined_cells, Cell, Param, Row};
use crate::error::{Error, Result};
use crate::sql::{Column, Kind, Statement};
use crate::tail::Source;

/// A pooled connection idle for this long is checked with an empty query before reuse.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);
/// Most time that check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// TCP keepalive: first probe after this much silence, then every `KEEPALIVE_INTERVAL`,
/// giving up after `KEEPALIVE_RETRIES`; unacknowledged data gives up after
/// `TCP_USER_TIMEOUT`. Applied unless the connection string sets them.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(20);
/// `application_name` unless the connection string sets one.
const APPLICATION_NAME: &str = "aibind-rs";

/// How a pool is set up: its size, its time limits in ms (`idle_timeout_ms` 0: never), how
/// it runs statements, and where it LISTENs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolSettings {
    pub size: usize,
    pub connect_timeout_ms: u64,
    pub query_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub pooler: Pooler,
    pub listen_url: Option<String>,
}

/// The pool's connections and how statements run on them: cheap to clone, shared with
/// the shared check (`sweep.rs`) and the notifier (`notify.rs`).
#[derive(Clone)]
pub struct Conns {
    pool: Pool,
    tls: MakeRustlsConnect,
    size: usize,
    query_timeout: Duration,
    idle_timeout: Option<Duration>,
    mode: Arc<Mode>,
    budget: Arc<Budget>,
    pub counters: Arc<Counters>,
    /// Whether the task that closes idle connections runs.
    reaping: Arc<std::sync::atomic::AtomicBool>,
}

pub struct SharedPool {
    /// Stores using the pool and not closed.
    stores: std::sync::atomic::AtomicUsize,
    conns: Conns,
    sweeper: Sweeper,
    notifier: Notifier,
    source: Source,
    /// The calls of combined statements waiting to go out (`combine.rs`).
    queues: Queues,
}

impl Drop for SharedPool {
    fn drop(&mut self) {
        self.conns.pool.close();
    }
}

type Registry = Mutex<HashMap<(String, PoolSettings), Weak<SharedPool>>>;

/// Pools by (connection string, settings). A pool lives while some store holds it.
static POOLS: LazyLock<Registry> = LazyLock::new(Default::default);

pub fn shared(url: &str, settings: PoolSettings) -> Result<Arc<SharedPool>> {
    let mut pools = POOLS.lock().map_err(|_| Error::Closed)?;
    let key = (url.to_string(), settings.clone());
    if let Some(pool) = pools.get(&key).and_then(Weak::upgrade) {
        pool.stores.fetch_add(1, Ordering::AcqRel);
        return Ok(pool);
    }
    pools.retain(|_, pool| pool.strong_count() > 0);
    let pool = Arc::new(SharedPool::new(url, settings)?);
    pools.insert(key, Arc::downgrade(&pool));
    Ok(pool)
}

impl SharedPool {
    fn new(url: &str, settings: PoolSettings) -> Result<Self> {
        let PoolSettings {
            size,
            connect_timeout_ms,
            query_timeout_ms,
            idle_timeout_ms,
            pooler,
            listen_url,
        } = settings;
        // No `options` startup parameter: poolers refuse it (PgBouncer's default
        // ignore_startup_parameters). The server-side limit is set once per connection
        // or per statement instead (`pooler.rs`).
        let (config, connector) = client_config(url, connect_timeout_ms)?;
        let (listen_config, listen_tls) = match &listen_url {
            Some(listen) => client_config(listen, connect_timeout_ms)?,
            None => (config.clone(), connector.clone()),
        };
        let mode = Arc::new(Mode::new(pooler, query_timeout_ms));
        let budget = Arc::new(Budget::new(size));
        let manager = Manager::from_config(
            config.clone(),
            connector.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size)
            // The connection used last goes out first: a quiet store's few statements
            // stay on one connection, prepared there once.
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_millis(query_timeout_ms)))
            .create_timeout(Some(Duration::from_millis(connect_timeout_ms + 5_000)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .post_create({
                let (mode, budget) = (mode.clone(), budget.clone());
                Hook::async_fn(move |client, _| {
                    let (mode, budget) = (mode.clone(), budget.clone());
                    Box::pin(async move {
                        match mode.set_up(client).await {
                            Ok(spare) => {
                                budget.opened(spare);
                                Ok(())
                            }
                            Err(e) => Err(HookError::Backend(e)),
                        }
                    })
                })
            })
            .pre_recycle(Hook::async_fn(|client, metrics| {
                Box::pin(async move {
                    if metrics.last_used() < CHECK_IDLE_AFTER {
                        return Ok(());
                    }
                    // Idle for a while: make sure the other end is still there.
                    match tokio::time::timeout(CHECK_TIMEOUT, client.simple_query("")).await {
                        Ok(Ok(_)) => Ok(()),
                        _ => Err(HookError::message("an idle connection did not answer")),
                    }
                })
            }))
            .build()
            .map_err(|e| Error::InvalidArgument(format!("could not build the pool: {e}")))?;
        let conns = Conns {
            pool,
            tls: connector.clone(),
            size,
            query_timeout: Duration::from_millis(query_timeout_ms),
            idle_timeout: (idle_timeout_ms > 0).then(|| Duration::from_millis(idle_timeout_ms)),
            mode,
            budget,
            counters: Arc::default(),
            reaping: Arc::default(),
        };
        let source = crate::tail::new_source();
        Ok(SharedPool {
            stores: 1.into(),
            sweeper: Sweeper::default(),
            notifier: Notifier::new(conns.clone(), listen_config, listen_tls, source),
            source,
            conns,
            queues: Queues::default(),
        })
    }

    /// What `store.stats()` reports for this pool.
    pub fn stats(&self) -> BackendStats {
        let status = self.conns.pool.status();
        let budget = &self.conns.budget;
        let counters = &self.conns.counters;
        let idle = status.available as u32;
        BackendStats {
            backend: "rust-pool".into(),
            pooler: Some(self.conns.mode.describe().into()),
            max_size: Some(self.conns.size as u32),
            size: Some(status.size as u32),
            in_use: Some((status.size as u32).saturating_sub(idle)),
            idle: Some(idle),
            opening: Some(budget.opening.load(Ordering::Acquire) as u32),
            waiting: Some(budget.waiting.load(Ordering::Acquire) as u32),
            allowed: Some(budget.cap() as u32),
            listener: self.notifier.state().into(),
            readers_waiting: self.sweeper.len() as u32,
            statements_sent: Some(read(&counters.statements)),
            notifications_sent: Some(read(&counters.notifications_sent)),
            notifications_received: Some(read(&counters.notifications_received)),
            connections_refused: Some(read(&budget.refused)),
        }
    }

    /// A store let go of the pool: true if it was the last.
    pub fn release_store(&self) -> bool {
        self.stores.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub fn conns(&self) -> &Conns {
        &self.conns
    }

    /// Tells readers in every other process of a write (see `notify.rs`).
    pub fn publish(&self, written: Written) {
        self.notifier.publish(written);
    }

    /// This pool's database, as the tails know it (`tail.rs`).
    pub fn source(&self) -> Source {
        self.source
    }

    /// Runs one statement by `deadline` (waiting for a connection included).
    pub async fn query(
        &self,
        statement: &Statement,
        params: &[Param],
        deadline: Instant,
    ) -> Result<Vec<Row>> {
        self.conns.query(statement, params, deadline).await
    }

    /// Registers a waiting reader with the pool's shared check (see `sweep.rs`), and makes
    /// sure this process hears other processes' writes if `listen`.
    pub fn wait(&self, waiter: Waiter, listen: bool) -> Waiting {
        if listen {
            self.notifier.listen();
        }
        self.sweeper
            .add(&self.conns, self.notifier.listening(), waiter)
    }

    /// What `close()` waits for once the last store let go of this pool: its in-flight
    /// calls done (the pool and its listener close with the last of them) and its
    /// connections gone. Later stores of the same connection string get a new pool.
    pub fn closing(self: &Arc<Self>) -> Closing {
        if let Ok(mut pools) = POOLS.lock() {
            pools.retain(|_, pool| !std::ptr::eq(pool.as_ptr(), Arc::as_ptr(self)));
        }
        Closing {
            shared: Arc::downgrade(self),
            pool: self.conns.pool.clone(),
        }
    }
}

impl Runner for SharedPool {
    fn query(
        &self,
        statement: &Statement,
        params: &[Param],
        deadline: Instant,
    ) -> impl std::future::Future<Output = Result<Vec<Row>>> + Send {
        self.conns.query(statement, params, deadline)
    }

    fn size(&self) -> usize {
        self.conns.size()
    }

    fn query_timeout_ms(&self) -> u64 {
        self.conns.query_timeout_ms()
    }

    fn queues(&self) -> &Queues {
        &self.queues
    }
}

/// The remains of a pool being closed.
pub struct Closing {
    shared: Weak<SharedPool>,
    pool: Pool,
}

impl Closing {
    /// Resolves once the pool is closed and all its connections with it, or after `most`.
    pub async fn closed(self, most: Duration) {
        let _ = tokio::time::timeout(most, async {
            while self.shared.strong_count() > 0 || self.pool.status().size > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
}

/// A client configuration for `url`, and its TLS connector: libpq's sslmode and
/// sslrootcert, a connect timeout, keepalive, and `application_name` "aibind-rs" unless
/// the string names one. No other startup parameter is added.
fn client_config(url: &str, connect_timeout_ms: u64) -> Result<(Config, MakeRustlsConnect)> {
    let mut info = ConnInfo::parse(url)?;
    let mut tls = Tls::take(&mut info)?;
    let mut config: Config = info.to_string().parse().map_err(|e| {
        Error::InvalidArgument(format!(
            "the connection string is not valid ({e}); expected \
             postgres://user:password@host:port/database or key=value pairs"
        ))
    })?;
    tls.plain_on_loopback(&config);
    config.ssl_mode(tls.ssl_mode());
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_millis(connect_timeout_ms));
    }
    // A dead peer (a NAT or load balancer that dropped the flow, a failed-over server) is
    // noticed in seconds; the default keepalive starts after two hours.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    Ok((config, tls.connector()?))
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
                let got = timeout_at(deadline, self.pool.get()).await;
                if opening {
                    budget.opening.fetch_sub(1, Ordering::AcqRel);
                }
                match got {
                    Ok(Ok(client)) => return Ok(client),
                    Ok(Err(PoolError::Backend(e)))
                    | Ok(Err(PoolError::PostCreateHook(HookError::Backend(e)))) => {
                        if !full(&e) {
                            return Err(Error::from_connect(e));
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
                    if budget.waited() == Grow::Measure {
                        self.measure_spare();
                    }
                }
                _ = sleep_until(deadline) => return Err(self.no_connection(refusal)),
            }
        }
    }

    fn no_connection(&self, refusal: Option<tokio_postgres::Error>) -> Error {
        let status = self.pool.status();
        if let (0, Some(refusal)) = (status.size, refusal) {
            return Error::from_connect(refusal);
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

    /// Measures, in the background, how many connections the server can spare (through
    /// the pool, like any statement): the pool grows only on a fresh measure.
    fn measure_spare(&self) {
        static COLUMNS: [Column; 1] = [Column {
            name: "spare",
            kind: Kind::Int,
        }];
        if !self.budget.start_measuring() {
            return;
        }
        let conns = self.clone();
        tokio::spawn(async move {
            let statement = Statement {
                text: format!("SELECT ({SPARE})::int AS spare").into(),
                columns: &COLUMNS,
                joined: None,
                combined: None,
            };
            if let Ok(rows) = conns.query(&statement, &[], conns.deadline()).await {
                if let Some(spare) = rows.first().and_then(|row| row.int(0)) {
                    conns.budget.measured(spare);
                }
            }
            conns.budget.done_measuring();
        });
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
        let mut switched = false;
        loop {
            let client = Lent(Some(self.connection(deadline).await?), &self.budget);
            // Too little time left to hear back: not sent at all, so it certainly did not
            // take effect (rather than sent and maybe committed after the caller gave up).
            if deadline.saturating_duration_since(Instant::now()) < self.query_timeout / 20 {
                return Err(Error::timed_out_unsent(self.query_timeout_ms()));
            }
            Counters::add(&self.counters.statements);
            let begin = self.mode.transaction().then(|| self.mode.begin());
            let outcome = self
                .run_by(client.get(), statement, params, begin, deadline)
                .await;
            let Err(err) = &outcome else { return outcome };
            // A named statement went missing or collided: a transaction pooler is in
            // between. It never ran: send it again, unnamed.
            let again = !switched && self.mode.pooler_error(err);
            if err.spoils_connection() {
                self.discard(client, matches!(err, Error::Lost { .. }) && !again);
            }
            if !again {
                return outcome;
            }
            switched = true;
        }
    }

    /// Runs the statement on `client` by `deadline`, then settles it (see below).
    async fn run_by(
        &self,
        client: &Object,
        statement: &Statement,
        params: &[Param],
        begin: Option<String>,
        deadline: Instant,
    ) -> Result<Vec<Row>> {
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
            Ok(outcome) => outcome,
            Err(_) => {
                let cancel = client.cancel_token();
                let tls = self.tls.clone();
                let settled = timeout_at(deadline, async {
                    let _ = cancel.cancel_query(tls).await;
                    (&mut running).await
                })
                .await;
                match settled {
                    Ok(outcome) => outcome,
                    Err(_) => Err(Error::timed_out(self.query_timeout_ms())),
                }
            }
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

/// Runs one statement on a connection and reads its rows. `begin`: behind a transaction
/// pooler, the statement goes unnamed in a transaction that `begin` starts, pipelined.
async fn run(
    client: &Object,
    statement: &Statement,
    params: &[Param],
    begin: Option<String>,
) -> Result<Vec<Row>> {
    let rows = match begin {
        None => {
            let prepared = client.prepare_cached(&statement.text).await?;
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(as_sql).collect();
            client.query(&prepared, &refs).await?
        }
        Some(begin) => {
            let typed: Vec<(&(dyn ToSql + Sync), Type)> =
                params.iter().map(|p| (as_sql(p), type_of(p))).collect();
            // Polled together, the three go out in one write: one round trip.
            let (began, rows, committed) = tokio::join!(
                client.batch_execute(&begin),
                client.query_typed(&statement.text, &typed),
                client.batch_execute("COMMIT"),
            );
            began?;
            let rows = rows?;
            committed?;
            rows
        }
    };
    let mut joined = match statement.joined {
        Some(column) => {
            let texts = rows
                .iter()
                .map(|row| row.try_get::<_, Option<&str>>(column))
                .collect::<Result<Vec<_>, _>>()?;
            joined_cells(texts.into_iter()).into_iter()
        }
        None => Vec::new().into_iter(),
    };
    rows.iter()
        .map(|row| {
            let cells = statement
                .columns
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    if statement.joined == Some(i) {
                        return Ok(joined.next().unwrap_or(Cell::Null));
                    }
                    Ok(match column.kind {
                        Kind::Int => row
                            .try_get::<_, Option<i32>>(i)?
                            .map_or(Cell::Null, |v| Cell::Int(v.into())),
                        Kind::Text => row
                            .try_get::<_, Option<String>>(i)?
                            .map_or(Cell::Null, Cell::Text),
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
            Ok(Row(cells))
        })
        .collect()
}

fn as_sql(param: &Param) -> &(dyn ToSql + Sync) {
    match param {
        Param::Text(v) => v,
        Param::OptText(v) => v,
        Param::Int(v) => v,
        Param::OptInt(v) => v,
        Param::OptIntArray(v) => v,
        Param::BigInt(v) => v,
        Param::TextArray(v) => v,
        Param::OptTextArray(v) => v,
        Param::IntArray(v) => v,
        Param::BigIntArray(v) => v,
    }
}
