//! Statements combined when the Rust pool is busy.
//!
//! A statement that has a combined form (`Statement::combined`: the same work for many
//! parameter sets, taken as arrays, each result row led by the 1-based position of its
//! parameter set) runs like any other while fewer than `LANES` of it are in flight. Beyond
//! that, calls queue here, and whichever call of that statement finishes next takes the
//! whole queue out as one combined statement: one round trip and one commit for all of
//! them. So many streams appending at once never wait behind one another for more than
//! one statement, and under load the database does a fraction of the work per call.
//! Calls keep their order, so one stream's chunks keep their call order.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::pool::SharedPool;
use super::{Cell, Param, Row};
use crate::error::{Error, Result};
use crate::sql::Statement;

/// Most calls of one statement in flight before calls queue up to be combined. One: the
/// queue grows while a statement runs and goes out whole next, which adapts the batch to
/// the load and the round trip (measured here: 1 lane beat 2 and 4 on appends and on
/// conversation saves and loads).
const LANES: usize = 1;
/// Most calls in one combined statement, and about the most parameter bytes.
const MOST_CALLS: usize = 256;
const MOST_BYTES: usize = 4 * 1024 * 1024;

struct Queued {
    params: Vec<Param>,
    done: oneshot::Sender<Result<Vec<Row>>>,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    queue: Vec<Queued>,
}

/// The combined form of a statement, and the calls of it waiting to go out.
#[derive(Debug)]
pub struct Combined {
    pub statement: Statement,
    state: Mutex<State>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in flight, {} queued",
            self.in_flight,
            self.queue.len()
        )
    }
}

impl Combined {
    pub fn new(statement: Statement) -> Self {
        Combined {
            statement,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `statement` (which has a combined form) through the pool. The call takes its
/// place (a lane, or the queue) here, on the calling thread, so calls keep their order;
/// the returned future sends it.
pub fn run(
    pool: Arc<SharedPool>,
    statement: &Statement,
    params: Vec<Param>,
) -> impl std::future::Future<Output = Result<Vec<Row>>> + Send + 'static {
    let statement = statement.clone();
    let combined = statement.combined.clone().expect("a combined form");
    let queued = {
        let mut state = combined.state();
        if state.in_flight < LANES.min(pool.size()) {
            state.in_flight += 1;
            Err(params)
        } else {
            let (done, outcome) = oneshot::channel();
            state.queue.push(Queued { params, done });
            Ok(outcome)
        }
    };
    async move {
        let params = match queued {
            Ok(outcome) => return outcome.await.unwrap_or(Err(Error::Closed)),
            Err(params) => params,
        };
        let outcome = pool.query(&statement, &params).await;
        // This lane now serves the queue, if anything waits, on a task of its own so this
        // call's caller hears back at once.
        if let Some(batch) = next_batch(&combined) {
            tokio::spawn(drain(pool, statement, combined, batch));
        }
        outcome
    }
}

/// The queued calls to send next (the lane stays in flight), or `None` (the lane is given
/// back).
fn next_batch(combined: &Combined) -> Option<Vec<Queued>> {
    let mut state = combined.state();
    if state.queue.is_empty() {
        state.in_flight -= 1;
        return None;
    }
    let mut bytes = 0;
    let take = state
        .queue
        .iter()
        .take(MOST_CALLS)
        .take_while(|q| {
            bytes += q.params.iter().map(Param::size).sum::<usize>();
            bytes <= MOST_BYTES
        })
        .count()
        .max(1);
    Some(state.queue.drain(..take).collect())
}

async fn drain(
    pool: Arc<SharedPool>,
    statement: Statement,
    combined: Arc<Combined>,
    mut batch: Vec<Queued>,
) {
    loop {
        send_batch(&pool, &statement, &combined.statement, batch).await;
        match next_batch(&combined) {
            Some(next) => batch = next,
            None => return,
        }
    }
}

async fn send_batch(pool: &SharedPool, one: &Statement, many: &Statement, batch: Vec<Queued>) {
    if batch.len() == 1 {
        let q = batch.into_iter().next().expect("one call");
        let _ = q.done.send(pool.query(one, &q.params).await);
        return;
    }
    let (params, waiters): (Vec<_>, Vec<_>) = batch.into_iter().map(|q| (q.params, q.done)).unzip();
    match pool.query(many, &Param::columns(params)).await {
        Ok(rows) => {
            let mut each: Vec<Vec<Row>> = waiters.iter().map(|_| Vec::new()).collect();
            for Row(mut cells) in rows {
                let Cell::Int(n) = cells.remove(0) else {
                    continue;
                };
                if let Some(rows) = each.get_mut((n - 1) as usize) {
                    rows.push(Row(cells));
                }
            }
            for (done, rows) in waiters.into_iter().zip(each) {
                let _ = done.send(Ok(rows));
            }
        }
        Err(err) => {
            for done in waiters {
                let _ = done.send(Err(err.clone()));
            }
        }
    }
}
