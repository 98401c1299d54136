//! What `store.stats()` reports of a pool: its connections, budget, listener and counters.

use std::sync::atomic::Ordering;

use super::SharedPool;
use crate::backend::stats::{read, BackendStats};

impl SharedPool {
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
            readers_waiting: self.checker.len() as u32,
            statements_sent: Some(read(&counters.statements)),
            notifications_sent: Some(read(&counters.notifications_sent)),
            notifications_received: Some(read(&counters.notifications_received)),
            connections_refused: Some(read(&budget.refused)),
            // A store's own (`Db::stats`).
            replica_reads: None,
            primary_reads: 0.0,
            replica_fallbacks: None,
        }
    }
}
