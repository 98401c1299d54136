//! What a stream store shares with its readers: the store's connection (`Db`), its
//! statements and its settings. Its own module, so that the store (`stream_store.rs`) and
//! the reader (`reader/`) both depend on it and neither on the other's internals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::backend::notify_choice::{NotifyChoice, Pick};
use crate::backend::Db;
use crate::options::StreamSettings;
use crate::sql::StreamSql;
use crate::waker::Waker;

/// What a store's readers share with it.
pub struct StreamShared {
    pub db: Arc<Db>,
    pub sql: StreamSql,
    pub settings: StreamSettings,
    /// Wakes the store's waiting readers in JS, all in one call (`waker.rs`).
    pub waker: Waker,
    /// A JS client's appends made while none of the store's others is in flight.
    pub lone: Arc<LoneAppends>,
    /// Appends a JS client's store sends from JS, not yet settled (`sent_appends.rs`).
    pub sent: Mutex<SentAppends>,
}

/// The appends of one store sent from JS and not yet settled, by ticket: each holds its
/// place among the lone appends (`LoneAppends`) until its outcome comes.
#[derive(Default)]
pub struct SentAppends {
    pub next: u32,
    pub in_flight: HashMap<u32, Option<InFlight>>,
}

/// Where a JS client's store announces the chunk of an append it makes alone: inside the
/// append's transaction or after it (`backend/notify_choice.rs`; the Rust pool chooses in
/// its append lane instead).
#[derive(Default)]
pub struct LoneAppends {
    in_flight: AtomicUsize,
    choice: Mutex<NotifyChoice>,
}

impl LoneAppends {
    /// An append starts: how it announces its chunk, if it is alone.
    pub fn start(self: &Arc<Self>) -> (Option<Pick>, InFlight) {
        let alone = self.in_flight.fetch_add(1, Ordering::AcqRel) == 0;
        let pick = alone.then(|| self.choice().pick());
        let started = std::time::Instant::now();
        let this = self.clone();
        (
            pick,
            InFlight {
                lone: this,
                pick,
                started,
            },
        )
    }

    /// The lease of the pick just made (`NotifyChoice::lease`).
    pub fn lease(&self) -> u32 {
        self.choice().lease()
    }

    /// `used` lone appends were made on a lease (`NotifyChoice::skip`).
    pub fn skip(&self, used: u32) {
        if used > 0 {
            self.choice().skip(used);
        }
    }

    fn choice(&self) -> std::sync::MutexGuard<'_, NotifyChoice> {
        self.choice.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An append in flight; it counts as done when dropped, however it ended.
pub struct InFlight {
    lone: Arc<LoneAppends>,
    pick: Option<Pick>,
    started: std::time::Instant,
}

impl InFlight {
    /// It stored its chunk: its latency counts toward the choice.
    pub fn stored(&self) {
        if let Some(pick) = self.pick {
            let micros = self.started.elapsed().as_micros() as u64;
            self.lone.choice().record(pick, micros);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.lone.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
