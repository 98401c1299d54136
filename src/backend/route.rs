//! How a read may be served by the read replica (`Route`), and `routed`: the replica's
//! rows if the caller keeps them, else the primary's (see `read.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::time::Instant;

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
