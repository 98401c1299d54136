//! The pool options a store is given (`PoolOptions`, from JS) and their checks.

use napi_derive::napi;

use super::pool::{PoolSettings, Pooler};
use crate::error::{Error, Result};

/// Pool settings for a store built from a connection string.
#[napi(object)]
#[derive(Default)]
pub struct PoolOptions {
    /// Most connections the pool opens, 1 to 1000 (default 10). It opens them on demand
    /// (one more only when a call has waited for a busy one) and closes idle ones. Stores
    /// created with the same connection string and pool options in one process share one
    /// pool. Checked, but not used, with a JS client (its own pool decides).
    pub pool_size: Option<f64>,
    /// How long opening a connection may take, in ms (default 10000).
    pub connect_timeout_ms: Option<f64>,
    /// How long one call may take from the moment it is made, in ms (default 30000):
    /// waiting in a queue and for a free connection included, then it rejects with
    /// `QUERY_TIMEOUT` (or `CONNECTION_ERROR` when no connection was free). The statement
    /// is cancelled on the server. With a connection string the server is told the same
    /// limit (`statement_timeout`, set per connection, or per statement behind a
    /// transaction pooler).
    pub query_timeout_ms: Option<f64>,
    /// How long a pooled connection may stay idle before it is closed, in ms (default
    /// 10000, as pg.Pool); 0 keeps idle connections open.
    pub idle_timeout_ms: Option<f64>,
    /// What sits between this process and PostgreSQL: "auto" (default: found out per
    /// connection), "transaction" (PgBouncer or Supavisor in transaction mode: unnamed
    /// statements, nothing that outlives a transaction), "session" or "none".
    pub pooler: Option<String>,
    /// A connection string used only for LISTEN (a direct host, when the main one goes
    /// through a pooler that cannot deliver notifications). Default: the main one.
    pub listen_url: Option<String>,
    /// How often a LISTEN connection that has proved it hears sends itself a probe again,
    /// in ms (default 30000). A probe not back within 3 s means the connection was lost
    /// without a word (a NAT or a proxy that dropped it): it is opened again, and every
    /// waiting reader looks once. Also used, from the store's options, with a JS client.
    pub listen_heartbeat_ms: Option<f64>,
    /// A read replica's connection string (a streaming standby of the same database):
    /// replays of finished streams and conversation loads that cannot be older there go
    /// to it, everything else to the main one (`docs/replicas.md`). Connection strings
    /// only.
    pub replica_url: Option<String>,
}

impl PoolOptions {
    pub(super) fn settings(self) -> Result<PoolSettings> {
        let size = match self.pool_size {
            None => 10,
            Some(n) if n.fract() == 0.0 && (1.0..=1000.0).contains(&n) => n as usize,
            Some(n) => {
                return Err(Error::InvalidOption(format!(
                    "option \"poolSize\" must be a whole number from 1 to 1000, got {n}"
                )))
            }
        };
        let idle_timeout_ms = match self.idle_timeout_ms {
            Some(0.0) => 0,
            other => positive_ms("idleTimeoutMs", other, 10_000)?,
        };
        Ok(PoolSettings {
            size,
            connect_timeout_ms: positive_ms("connectTimeoutMs", self.connect_timeout_ms, 10_000)?,
            query_timeout_ms: positive_ms("queryTimeoutMs", self.query_timeout_ms, 30_000)?,
            idle_timeout_ms,
            pooler: Pooler::parse(self.pooler.as_deref())?,
            listen_url: self.listen_url,
            listen_heartbeat_ms: positive_ms(
                "listenHeartbeatMs",
                self.listen_heartbeat_ms,
                30_000,
            )?,
            replica_url: self.replica_url,
            replica: false,
        })
    }
}

/// A time limit option: a whole number of milliseconds from 1 to a day.
pub fn positive_ms(option: &str, value: Option<f64>, default: u64) -> Result<u64> {
    match value {
        None => Ok(default),
        Some(v) if v.fract() == 0.0 && (1.0..=86_400_000.0).contains(&v) => Ok(v as u64),
        Some(v) => Err(Error::InvalidOption(format!(
            "option \"{option}\" must be a whole number of milliseconds from 1 to 86400000, got {v}"
        ))),
    }
}
