//! Which of a reader's pages may come from the read replica (`replicaUrl`): a page is
//! kept when the replica shows the stream finished (not active) with a count no lower
//! than anything this process knows of it. The primary committed every chunk before the
//! finished status row, and the replica replays the WAL in order, so such a replica holds
//! every chunk. Anything else goes to the primary, and from then on the reader stays there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use super::page;
use crate::backend::{Route, Row};
use crate::tail::Source;
use crate::wakeups::Hub;

/// What the store's writer knows of a stream a reader reads (`readFrom`): whether it
/// writes it (created or appended through this store, not seen finished) and the most
/// chunks it stored. A replica is read only for a stream it does not write.
#[derive(Clone, Copy, Default)]
pub struct WriterKnows {
    pub writing: bool,
    pub written: i64,
}

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
    /// The stream's hub in this process, for what its tail knows (`Tail::replica_may_serve`);
    /// not kept alive by this (the reader's subscription does, while it reads).
    pub hub: Weak<Hub>,
}

impl ReplicaUse {
    /// `writer` `None`: the reader never reads the replica (a stop signal's watcher).
    pub(super) fn new(writer: Option<WriterKnows>, hub: Arc<Hub>) -> Self {
        ReplicaUse {
            allowed: writer.is_some_and(|w| !w.writing),
            written: writer.map_or(0, |w| w.written),
            on_primary: Arc::default(),
            hub: Arc::downgrade(&hub),
        }
    }

    /// The route of a reader's next page (`None`: the primary, where it stays once
    /// there). `source`: the reader's database as the tails know it; `seen`: the most
    /// chunks the reader has seen the stream have.
    pub(super) fn route(&self, has_replica: bool, source: Source, seen: i64) -> Option<Route> {
        if !self.allowed || self.on_primary.load(Ordering::Acquire) || !has_replica {
            return None;
        }
        let (hub, least) = (self.hub.clone(), self.written.max(seen));
        let mut route = Route::new(move |rows| holds(rows, least, &hub, source));
        route.on_primary = Some(self.on_primary.clone());
        Some(route)
    }
}

/// Whether the replica's page may be kept (see the module's doc).
fn holds(rows: &[Row], least: i64, hub: &Weak<Hub>, source: Source) -> bool {
    let Some((state, total)) = page::status(rows) else {
        return false; // missing there: perhaps made since
    };
    state != "active"
        && total >= least
        && hub
            .upgrade()
            .is_some_and(|hub| hub.replica_may_serve(source, total))
}
