//! The Rust backend: a deadpool-postgres pool per connection string, shared by every
//! store in the process, with a cache of prepared statements on each connection, and its
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
    Hook, HookError, Manager, ManagerConfig, Object, Pool, QueueMode, RecyclingMethod, Runtime,
};
use tokio::time::{timeout_at, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::conninfo::ConnInfo;
use super::notify::Notifier;
use super::sweep::{Sweeper, Waiter, Waiting};
use super::tls::Tls;
use super::{joined_cells, Cell, Param, Row};
use crate::error::{Error, Result};
use crate::sql::{Kind, Statement};

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

/// How a pool is set up: its size and its time limits, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolSettings {
    pub size: usize,
    pub connect_timeout_ms: u64,
    pub query_timeout_ms: u64,
}

/// The pool's connections and how statements run on them: cheap to clone, shared with
/// the shared check (`sweep.rs`) and the notifier (`notify.rs`).
#[derive(Clone)]
pub struct Conns {
    pool: Pool,
    tls: MakeRustlsConnect,
    size: usize,
    query_timeout: Duration,
}

pub struct SharedPool {
    /// Stores using the pool and not closed.
    stores: std::sync::atomic::AtomicUsize,
    conns: Conns,
    sweeper: Sweeper,
    notifier: Notifier,
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
    let key = (url.to_string(), settings);
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
        } = settings;
        let mut info = ConnInfo::parse(url)?;
        let mut tls = Tls::take(&mut info)?;
        let mut config: tokio_postgres::Config = info.to_string().parse().map_err(|e| {
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
        // A dead peer (a NAT or load balancer that dropped the flow, a failed-over
        // server) is noticed in seconds; the default keepalive starts after two hours.
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
        // The server gives up on a statement at the same limit, so a slow one does not
        // keep working (and holding locks) after the caller was told it timed out.
        let statement_timeout = format!("-c statement_timeout={query_timeout_ms}");
        let options = match config.get_options() {
            Some(given) => format!("{given} {statement_timeout}"),
            None => statement_timeout,
        };
        config.options(&options);
        let connector = tls.connector()?;
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
        };
        Ok(SharedPool {
            stores: 1.into(),
            sweeper: Sweeper::default(),
            notifier: Notifier::new(conns.clone(), config, connector),
            conns,
        })
    }

    /// A store let go of the pool: true if it was the last.
    pub fn release_store(&self) -> bool {
        self.stores.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub fn conns(&self) -> &Conns {
        &self.conns
    }

    /// Tells readers in every process that the stream was written (see `notify.rs`).
    pub fn publish(&self, key: &str, id: &str) {
        self.notifier.publish(key, id);
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

    /// A connection by `deadline`.
    async fn connection(&self, deadline: Instant) -> Result<Object> {
        match timeout_at(deadline, self.pool.get()).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(deadpool_postgres::PoolError::Backend(e))) => Err(Error::from_connect(e)),
            Ok(Err(deadpool_postgres::PoolError::Closed)) => Err(Error::Closed),
            Ok(Err(deadpool_postgres::PoolError::Timeout(_))) | Err(_) => {
                let status = self.pool.status();
                Err(if status.size >= status.max_size {
                    Error::no_free_connection(self.query_timeout_ms())
                } else {
                    Error::Connection {
                        message: format!(
                            "opening a connection took longer than queryTimeoutMs ({} ms); \
                             is PostgreSQL reachable?",
                            self.query_timeout_ms()
                        ),
                        sql_state: None,
                        retryable: true,
                    }
                })
            }
            Ok(Err(other)) => Err(Error::Connection {
                message: other.to_string(),
                sql_state: None,
                retryable: true,
            }),
        }
    }

    /// Runs one statement on a pooled connection (prepared once per connection) by
    /// `deadline`. A connection on which the statement timed out or broke is dropped, and
    /// a timed-out statement is cancelled on the server.
    pub async fn query(
        &self,
        statement: &Statement,
        params: &[Param],
        deadline: Instant,
    ) -> Result<Vec<Row>> {
        let client = self.connection(deadline).await?;
        // Too little time left to hear back: not sent at all, so it certainly did not
        // take effect (rather than sent and maybe committed after the caller gave up).
        if deadline.saturating_duration_since(Instant::now()) < self.query_timeout / 20 {
            return Err(Error::timed_out_unsent(self.query_timeout_ms()));
        }
        let outcome = self.run_by(&client, statement, params, deadline).await;
        if let Err(err) = &outcome {
            if err.spoils_connection() {
                self.discard(client, matches!(err, Error::Lost { .. }));
            }
        }
        outcome
    }

    /// Runs the statement on `client` by `deadline`, then settles it (see below).
    async fn run_by(
        &self,
        client: &Object,
        statement: &Statement,
        params: &[Param],
        deadline: Instant,
    ) -> Result<Vec<Row>> {
        // The last tenth of the time (at least 100 ms, or half of it when it is short) is
        // kept to settle a statement still running then: the server is asked to cancel
        // it, and its own answer is awaited until the deadline. Then its outcome is
        // certain: cancelled (57014), or done after all. Only a connection that does not
        // answer even then (a dead network) leaves it unknown, and is dropped.
        let left = deadline.saturating_duration_since(Instant::now());
        let settle = (left / 10).max((left / 2).min(Duration::from_millis(100)));
        let running = run(client, statement, params);
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
    fn discard(&self, client: Object, cancel: bool) {
        if cancel {
            let token = client.cancel_token();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CHECK_TIMEOUT * 5, token.cancel_query(tls)).await;
            });
        }
        drop(Object::take(client));
        self.pool.retain(|_, _| false);
    }
}

/// Runs one statement on a connection and reads its rows.
async fn run(client: &Object, statement: &Statement, params: &[Param]) -> Result<Vec<Row>> {
    let prepared = client.prepare_cached(&statement.text).await?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(as_sql).collect();
    let rows = client.query(&prepared, &refs).await?;
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
