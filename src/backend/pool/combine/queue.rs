//! The state of combining: each combined statement's queue (`Queue`, in a pool's
//! `Queues`), the calls in it (`Queued`), and what runs the statements (`Runner`).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::backend::rows::{Param, Row};
use crate::error::Result;
use crate::sql::{Combined, Statement};

use crate::backend::notify_choice::NotifyChoice;

pub(super) struct Queued {
    /// Identifies the call, to take it out of the queue when its deadline passes.
    pub ticket: u64,
    pub params: Vec<Param>,
    pub deadline: Instant,
    pub done: oneshot::Sender<Result<Vec<Row>>>,
    /// The store call it is (`telemetry.rs`; 0 when nobody listens).
    pub call: u32,
}

#[derive(Default)]
pub(super) struct State {
    pub in_flight: usize,
    pub next_ticket: u64,
    pub queue: VecDeque<Queued>,
    /// Keys whose calls go on the side path, in call order.
    pub held: HashMap<String, VecDeque<Queued>>,
    /// Calls on side paths.
    pub held_calls: usize,
    /// Where the lane's durable appends announce their chunks.
    pub notify: NotifyChoice,
    /// Until when a lane append holds its announcement back for a later one to carry
    /// (`notifyBatchMs` after the last that announced inside).
    pub quiet_until: Option<tokio::time::Instant>,
}

/// What runs the statements: the pool (`pool/mod.rs`), or a stand-in in the tests.
pub trait Runner: Send + Sync + 'static {
    /// Runs one statement by `deadline`.
    fn query(
        &self,
        statement: &Statement,
        params: &[Param],
        deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Row>>> + Send;
    /// Most connections: a lane is only taken while there is one for it.
    fn size(&self) -> usize;
    /// The time limit, for the message of a call that timed out unsent.
    fn query_timeout_ms(&self) -> u64;
    /// The queues of the combined statements run here.
    fn queues(&self) -> &Queues;
    /// For an append about to announce inside its own transaction: the announcements
    /// waiting to go out, to carry first (`notifier.rs`); `None` while a batch of them is
    /// on its way.
    fn take_announcements(&self) -> Option<Vec<String>> {
        Some(Vec::new())
    }
    /// Announcements taken to be carried by a statement that did not send them.
    fn announce_again(&self, _payloads: Vec<String>) {}
}

/// The calls of one combined statement waiting to go out, its lane and its side paths.
#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
}

impl Queue {
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A pool's queues, one per combined statement (a store's, known by its address: each
/// store has its own queue, as each has its own statements). An entry goes once its
/// statement is gone (the `Weak` keeps the address from being reused until then).
#[derive(Default)]
pub struct Queues(Mutex<HashMap<usize, Entry>>);

/// A combined statement (while it lives) and its queue.
type Entry = (Weak<Combined>, Arc<Queue>);

impl Queues {
    /// The queue of `combined`, made when it is first run here.
    pub fn of(&self, combined: &Arc<Combined>) -> Arc<Queue> {
        let mut queues = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = Arc::as_ptr(combined) as usize;
        if let Some((_, queue)) = queues.get(&key) {
            return queue.clone();
        }
        queues.retain(|_, (statement, _)| statement.strong_count() > 0);
        let queue = Arc::new(Queue::default());
        queues.insert(key, (Arc::downgrade(combined), queue.clone()));
        queue
    }
}

/// A combined statement's forms and its queue: what the functions below work on.
pub(super) struct Combining {
    pub sql: Arc<Combined>,
    pub queue: Arc<Queue>,
}

impl Combining {
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.queue.state()
    }
}

/// The key a call is held by on the side path: its first parameter.
pub(super) fn key(params: &[Param]) -> Option<&str> {
    match params.first() {
        Some(Param::Text(key)) => Some(key),
        _ => None,
    }
}
