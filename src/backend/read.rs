//! Reads that may go to the read replica (`replicaUrl`, `pool/replica.rs`): a reader's
//! page and a conversation load. The caller says what it would keep of the replica's rows
//! (`Route::keep`); anything else, and every read without a replica, goes to the primary
//! by the call's deadline. Each read is counted where it was served (`stats.rs`'s
//! `Reads`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::Env;
use tokio::time::Instant;

use super::db::{Backend, Db, Started};
use super::pool::{combine, SharedPool};
use super::rows::{Param, Row};
use super::stats::{Counters, Reads};
use crate::error::Result;
use crate::sql::Statement;

type Keep = Box<dyn FnOnce(&[Row]) -> bool + Send>;

/// How a read may be served by the replica.
pub struct Route {
    /// Whether the replica's rows may be kept (else the primary is asked).
    pub keep: Keep,
    /// The replica's form of the statement and its parameters, when it differs.
    pub on_replica: Option<(Statement, Vec<Param>)>,
    /// Set once the primary served this read (a reader then stays on the primary).
    pub on_primary: Option<Arc<AtomicBool>>,
}

impl Route {
    pub fn new(keep: impl FnOnce(&[Row]) -> bool + Send + 'static) -> Self {
        Route {
            keep: Box::new(keep),
            on_replica: None,
            on_primary: None,
        }
    }
}

/// The rows of a read: the replica's if it has one and `route` keeps them, else the
/// primary's, by `deadline`.
pub(super) async fn routed(
    pool: &Arc<SharedPool>,
    reads: &Reads,
    statement: &Statement,
    params: &[Param],
    route: Option<Route>,
    deadline: Instant,
) -> Result<Vec<Row>> {
    if let (Some(route), Some(replica)) = (route, pool.replica()) {
        let (on_replica, replica_params) = match &route.on_replica {
            Some((statement, params)) => (statement, params.as_slice()),
            None => (statement, params),
        };
        if let Some(rows) = replica
            .read(on_replica, replica_params, deadline, route.keep)
            .await
        {
            Counters::add(&reads.replica);
            return Ok(rows);
        }
        Counters::add(&reads.fell_back);
        if let Some(on_primary) = route.on_primary {
            on_primary.store(true, Ordering::Release);
        }
    }
    Counters::add(&reads.primary);
    if statement.combined.is_some() {
        combine::run(pool.clone(), statement, params.to_vec(), deadline).await
    } else {
        pool.query(statement, params, deadline).await
    }
}

impl Db {
    /// Whether reads may go to a replica (`replicaUrl` was given).
    pub fn has_replica(&self) -> bool {
        matches!(self.backend(), Ok(Backend::Pool(pool)) if pool.replica().is_some())
    }

    /// `run` for a read: on the replica if `route` keeps its rows, else on the primary.
    pub fn read<'env, T, F>(
        &self,
        env: &'env Env,
        statement: &Statement,
        params: Vec<Param>,
        route: Option<Route>,
        decode: F,
    ) -> napi::Result<PromiseRaw<'env, T>>
    where
        T: ToNapiValue + Send + 'static,
        F: FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
    {
        match self.backend()? {
            Backend::Pool(pool) => {
                let deadline = pool.conns().deadline();
                let (statement, reads) = (statement.clone(), self.reads.clone());
                env.spawn_future(async move {
                    let rows = routed(&pool, &reads, &statement, &params, route, deadline).await?;
                    Ok(decode(rows)?)
                })
            }
            Backend::Js(_) => {
                Counters::add(&self.reads.primary);
                self.run(env, statement, params, decode)
            }
        }
    }

    /// `start` for a read (see `read`).
    pub fn start_read(
        &self,
        env: &Env,
        statement: &Statement,
        params: Vec<Param>,
        route: Option<Route>,
    ) -> Option<Started> {
        self.start_routed(env, statement, params, Some(route))
    }
}
