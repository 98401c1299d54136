//! The Rust backend: a deadpool-postgres pool per connection string, shared by every
//! store in the process, with a cache of prepared statements on each connection, and its
//! LISTEN/NOTIFY wake-ups (`notify.rs`).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;

use super::conninfo::ConnInfo;
use super::notify::Notifier;
use super::sweep::{Sweeper, Waiter, Waiting};
use super::tls::Tls;
use super::{joined_cells, Cell, Param, Row};
use crate::error::{timed_out, Error, Result};
use crate::sql::{Kind, Statement};

/// How a pool is set up: its size and its time limits, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolSettings {
    pub size: usize,
    pub connect_timeout_ms: u64,
    pub query_timeout_ms: u64,
}

pub struct SharedPool {
    pool: Pool,
    size: usize,
    query_timeout: Duration,
    sweeper: Sweeper,
    notifier: Notifier,
}

impl Drop for SharedPool {
    fn drop(&mut self) {
        self.pool.close();
    }
}

type Registry = Mutex<HashMap<(String, PoolSettings), Weak<SharedPool>>>;

/// Pools by (connection string, settings). A pool lives while some store holds it.
static POOLS: LazyLock<Registry> = LazyLock::new(Default::default);

pub fn shared(url: &str, settings: PoolSettings) -> Result<Arc<SharedPool>> {
    let mut pools = POOLS.lock().map_err(|_| Error::Closed)?;
    let key = (url.to_string(), settings);
    if let Some(pool) = pools.get(&key).and_then(Weak::upgrade) {
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
            .build()
            .map_err(|e| Error::InvalidArgument(format!("could not build the pool: {e}")))?;
        Ok(SharedPool {
            size,
            query_timeout: Duration::from_millis(query_timeout_ms),
            sweeper: Sweeper::default(),
            notifier: Notifier::new(pool.clone(), config, connector),
            pool,
        })
    }

    /// The most connections the pool opens.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Tells readers in every process that the stream was written (see `notify.rs`).
    pub fn publish(&self, table: &str, id: &str) {
        self.notifier.publish(table, id);
    }

    /// Runs one statement, within the pool's query timeout (waiting for a connection
    /// included).
    pub async fn query(&self, statement: &Statement, params: &[Param]) -> Result<Vec<Row>> {
        match tokio::time::timeout(self.query_timeout, query(&self.pool, statement, params)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(timed_out(self.query_timeout.as_millis() as u64)),
        }
    }

    /// Registers a waiting reader with the pool's shared check (see `sweep.rs`), and makes
    /// sure this process hears other processes' writes if `listen`.
    pub fn wait(&self, waiter: Waiter, listen: bool) -> Waiting {
        if listen {
            self.notifier.listen();
        }
        self.sweeper
            .add(&self.pool, self.notifier.listening(), waiter)
    }
}

/// Runs one statement on a pooled connection, prepared once per connection.
pub async fn query(pool: &Pool, statement: &Statement, params: &[Param]) -> Result<Vec<Row>> {
    let client = pool.get().await?;
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
        Param::BigInt(v) => v,
        Param::TextArray(v) => v,
        Param::OptTextArray(v) => v,
        Param::IntArray(v) => v,
        Param::BigIntArray(v) => v,
    }
}
