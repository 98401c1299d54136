//! The Rust backend: a deadpool-postgres pool per connection string, shared by every
//! store in the process, with a cache of prepared statements on each connection (none
//! behind a transaction pooler: `pooler.rs`), its connection budget (`budget.rs`) and its
//! LISTEN/NOTIFY wake-ups (`notifier.rs`). Its parts: `conns.rs` (connections and
//! deadlines), `execute.rs` (one statement on one connection), `combine/` (calls combined
//! when busy), `connect.rs` + `conninfo.rs` + `tls.rs` (the connection string's hosts, sslmode
//! and TLS), `writable.rs` (failovers: never writing through a read-only node).
//!
//! The pool heals: a connection whose statement timed out or broke is never used again
//! (a timed-out statement is also cancelled on the server), every idle connection is
//! dropped at such a failure (the network that broke one has likely broken the others),
//! a connection idle for a while is checked before reuse (also that it is not read-only),
//! a statement refused by a read-only node (25006, a failover) drops the connection and
//! runs again on a new one, and TCP keepalive notices a dead peer in seconds, not hours.

mod budget;
mod citus_check;
pub mod combine;
mod connect;
mod conninfo;
mod conns;
mod execute;
mod notifier;
mod pooler;
mod replica;
mod status;
mod tls;
mod writable;

pub use pooler::Pooler;
pub use replica::{share as replica_share, Replica, REST as REPLICA_REST};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime,
};
use tokio::time::Instant;

use super::check::{Checker, Waiter, Waiting};
use super::citus_state::CitusState;
use super::notify::Written;
use super::rows::{Param, Row};
use crate::error::{Error, Result};
use crate::sql::Statement;
use crate::tail::Source;
use budget::Budget;
use combine::{Queues, Runner};
use connect::{client_config, target};
use conns::{Conns, CHECK_TIMEOUT};
use notifier::Notifier;
use pooler::Mode;
use writable::read_only;

/// A pooled connection idle for this long is checked with an empty query before reuse.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);

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
    pub listen_heartbeat_ms: u64,
    /// A standby's connection string, for reads that may go there (`replica.rs`).
    pub replica_url: Option<String>,
    /// This pool is a replica's: its connections are read-only, and that is no fault.
    pub replica: bool,
}

pub struct SharedPool {
    /// Stores using the pool and not closed.
    stores: std::sync::atomic::AtomicUsize,
    conns: Conns,
    checker: Checker,
    notifier: Notifier,
    source: Source,
    /// The calls of combined statements waiting to go out (`combine/`).
    queues: Queues,
    /// Whether the database has Citus (`backend/citus.rs`).
    pub citus: CitusState,
    /// The read replica (`replicaUrl`), if one was given.
    replica: Option<Replica>,
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
    let key = (url.to_string(), settings.clone());
    if let Some(pool) = registered(&key)? {
        return Ok(pool);
    }
    // The replica's pool first (it registers itself), outside the registry's lock.
    let replica = match &settings.replica_url {
        Some(replica_url) => {
            let pool = shared(
                replica_url,
                PoolSettings {
                    replica_url: None,
                    listen_url: None,
                    replica: true,
                    ..settings.clone()
                },
            )?;
            Some(Replica::new(pool.conns.clone(), pool))
        }
        None => None,
    };
    let mut pools = POOLS.lock().map_err(|_| Error::Closed)?;
    if let Some(pool) = pools.get(&key).and_then(Weak::upgrade) {
        pool.stores.fetch_add(1, Ordering::AcqRel);
        return Ok(pool);
    }
    pools.retain(|_, pool| pool.strong_count() > 0);
    let pool = Arc::new(SharedPool::new(url, settings, replica)?);
    pools.insert(key, Arc::downgrade(&pool));
    Ok(pool)
}

/// The pool registered under `key`, counted as used by one more store.
fn registered(key: &(String, PoolSettings)) -> Result<Option<Arc<SharedPool>>> {
    let pools = POOLS.lock().map_err(|_| Error::Closed)?;
    let pool = pools.get(key).and_then(Weak::upgrade);
    if let Some(pool) = &pool {
        pool.stores.fetch_add(1, Ordering::AcqRel);
    }
    Ok(pool)
}

impl SharedPool {
    fn new(url: &str, settings: PoolSettings, replica: Option<Replica>) -> Result<Self> {
        let PoolSettings {
            size,
            connect_timeout_ms,
            query_timeout_ms,
            idle_timeout_ms,
            pooler,
            listen_url,
            listen_heartbeat_ms,
            replica_url: _,
            replica: replica_pool,
        } = settings;
        // No `options` startup parameter: poolers refuse it (PgBouncer's default
        // ignore_startup_parameters). The server-side limit is set once per connection
        // or per statement instead (`pooler.rs`).
        let (config, connector) = client_config(url, connect_timeout_ms, !replica_pool)?;
        let (listen_config, listen_tls) = match &listen_url {
            Some(listen) => client_config(listen, connect_timeout_ms, true)?,
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
            .pre_recycle(Hook::async_fn(move |client, metrics| {
                Box::pin(async move {
                    if metrics.last_used() < CHECK_IDLE_AFTER {
                        return Ok(());
                    }
                    let may_be_read_only = replica_pool;
                    // Idle for a while: make sure the other end is still there, and still
                    // writable (a failover may have left it on a node that is now a reader).
                    let check = client.simple_query("SHOW transaction_read_only");
                    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
                        Ok(Ok(answer)) if may_be_read_only || !read_only(&answer) => Ok(()),
                        Ok(Ok(_)) => Err(HookError::message("an idle connection is read-only")),
                        _ => Err(HookError::message("an idle connection did not answer")),
                    }
                })
            }))
            .build()
            .map_err(|e| Error::InvalidArgument(format!("could not build the pool: {e}")))?;
        let conns = Conns {
            pool,
            target: target(&config).into(),
            tls: connector.clone(),
            size,
            query_timeout: Duration::from_millis(query_timeout_ms),
            idle_timeout: (idle_timeout_ms > 0).then(|| Duration::from_millis(idle_timeout_ms)),
            mode,
            budget,
            counters: Arc::default(),
            reaping: Arc::default(),
            telemetry: crate::telemetry::Target::of(&config),
        };
        let source = crate::tail::new_source();
        Ok(SharedPool {
            stores: 1.into(),
            checker: Checker::default(),
            notifier: Notifier::new(
                conns.clone(),
                listen_config,
                listen_tls,
                source,
                Duration::from_millis(listen_heartbeat_ms),
            ),
            source,
            conns,
            queues: Queues::default(),
            citus: CitusState::default(),
            replica,
        })
    }

    /// The read replica, if one was given.
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// A store let go of the pool: true if it was the last.
    pub fn release_store(&self) -> bool {
        self.stores.fetch_sub(1, Ordering::AcqRel) == 1
    }

    pub fn conns(&self) -> &Conns {
        &self.conns
    }

    /// Tells readers in every other process of a write, no sooner than `batch` after the
    /// pool's last announcement (see `notifier.rs`).
    pub fn publish(&self, written: Written, batch: std::time::Duration) {
        self.notifier.publish(written, batch);
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

    /// Registers a waiting reader with the pool's shared check (see `backend/check.rs`), and makes
    /// sure this process hears other processes' writes if `listen`. Call it from the tokio
    /// runtime: it starts the check task unless it runs.
    pub fn wait(&self, waiter: Waiter, listen: bool) -> Waiting {
        if listen {
            self.notifier.listen();
        }
        let waiting = self.checker.add(waiter);
        if self.checker.start_task() {
            tokio::spawn(check_while_waited(
                self.checker.clone(),
                self.conns.clone(),
                self.notifier.listening(),
            ));
        }
        waiting
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

    fn take_announcements(&self) -> Option<Vec<String>> {
        self.notifier.take()
    }

    fn announce_again(&self, payloads: Vec<String>) {
        self.notifier.again(payloads);
    }
}

/// The pool's check task: one check of the waiting readers a tick; ends when no reader
/// waits.
async fn check_while_waited(checker: Checker, conns: Conns, listening: Arc<AtomicBool>) {
    loop {
        let Some(tick) = checker.next_tick(listening.load(Ordering::Acquire)) else {
            return;
        };
        tokio::time::sleep(tick).await;
        for check in checker.checks() {
            // Within `queryTimeoutMs`, like every statement.
            let rows = conns
                .query(&check.statement, &check.params, conns.deadline())
                .await;
            check.wake(rows);
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
