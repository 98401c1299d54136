//! A read replica (`replicaUrl`): a pool of its own on a standby, which serves the reads
//! that cannot be older there than what this process knows (a finished stream's pages,
//! a conversation saved before the replica's replay position). `Replica::read` tries it
//! first, within a share of the call's time; whatever it cannot serve (unreachable,
//! behind, refused by the caller's `keep`) goes to the primary by the same deadline.

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::conns::Conns;
use crate::backend::rows::{Param, Row};
use crate::error::Result;
use crate::sql::Statement;

/// The most of a call's time the replica gets (and at most a third of what is left):
/// the rest is the primary's, should the replica not answer.
const REPLICA_PATIENCE: Duration = Duration::from_secs(3);
/// After the replica failed (could not connect, an error, too slow), reads go straight to
/// the primary for this long.
pub const REST: Duration = Duration::from_secs(5);

/// The replica's share of `left`, the time a call has left: a third, `REPLICA_PATIENCE`
/// at most.
pub fn share(left: Duration) -> Duration {
    (left / 3).min(REPLICA_PATIENCE)
}

pub struct Replica {
    conns: Conns,
    /// The replica's pool (shared with other stores of the same replica), kept open.
    _pool: Arc<dyn Any + Send + Sync>,
    /// Until when reads skip the replica (it failed last time).
    resting_until: Mutex<Option<Instant>>,
}

impl Replica {
    pub(super) fn new(conns: Conns, pool: Arc<dyn Any + Send + Sync>) -> Self {
        Replica {
            conns,
            _pool: pool,
            resting_until: Mutex::new(None),
        }
    }

    fn resting(&self) -> bool {
        let until = *self
            .resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        until.is_some_and(|until| Instant::now() < until)
    }

    fn rest(&self) {
        *self
            .resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + REST);
    }

    /// The rows of `statement` on the replica if it answers in its share of the time
    /// left before `deadline` and `keep` takes them; `None` otherwise (the caller then
    /// asks the primary).
    pub async fn read(
        &self,
        statement: &Statement,
        params: &[Param],
        deadline: Instant,
        keep: impl FnOnce(&[Row]) -> bool,
    ) -> Option<Vec<Row>> {
        if self.resting() {
            return None;
        }
        let now = Instant::now();
        let share = share(deadline.saturating_duration_since(now));
        let rows: Result<Vec<Row>> = self.conns.query(statement, params, now + share).await;
        match rows {
            Ok(rows) if keep(&rows) => Some(rows),
            Ok(_) => None,
            Err(_) => {
                self.rest();
                None
            }
        }
    }
}
