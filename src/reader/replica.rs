//! Which of a reader's pages may come from the read replica (`replicaUrl`): a page is
//! kept when the replica shows the stream finished (not active) with a count no lower
//! than anything this process knows of it. The primary committed every chunk before the
//! finished status row, and the replica replays the WAL in order, so such a replica holds
//! every chunk. Anything else goes to the primary, and from then on the reader stays there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{page, ReaderInner};
use crate::backend::{Route, Row};
use crate::wakeups::Hub;

/// What decides where a reader's pages are read.
pub(super) struct ReplicaUse {
    /// Whether the replica may serve this reader at all: not when this store writes the
    /// stream and has not seen it finish (nor for a stop signal's watcher).
    pub allowed: bool,
    /// The most chunks this store's writer knows the stream has: the replica must show at
    /// least as many.
    pub written: i64,
    /// The primary served one of its pages: it stays there.
    pub on_primary: Arc<AtomicBool>,
    /// The stream's hub in this process, for what its tail knows (`Tail::replica_may_serve`).
    pub hub: Arc<Hub>,
}

impl ReaderInner {
    /// The route of this reader's next page: `None` (the primary) once it is there.
    pub(super) fn route(self: &Arc<Self>) -> Option<Route> {
        let replica = &self.replica;
        if !replica.allowed
            || replica.on_primary.load(Ordering::Acquire)
            || !self.shared.db.has_replica()
        {
            return None;
        }
        let reader = self.clone();
        let mut route = Route::new(move |rows| reader.replica_holds(rows));
        route.on_primary = Some(replica.on_primary.clone());
        Some(route)
    }

    /// Whether the replica's page may be kept (see the module's doc).
    fn replica_holds(&self, rows: &[Row]) -> bool {
        let Some((state, total)) = page::status(rows) else {
            return false; // missing there: perhaps made since
        };
        state != "active"
            && total >= self.replica.written
            && total >= self.cursor().total
            && (self.replica.hub).replica_may_serve(self.shared.db.source(), total)
    }
}
