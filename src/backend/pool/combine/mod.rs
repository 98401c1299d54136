//! Statements combined when the Rust pool is busy.
//!
//! A statement that has a combined form (`Statement::combined`: the same work for many
//! parameter sets, taken as arrays, each result row led by the 1-based position of its
//! parameter set) runs like any other while fewer than `LANES` of it are in flight. Beyond
//! that, calls queue here, and whichever call of that statement is done next takes the
//! whole queue out as one combined statement: one round trip and one commit for all of
//! them. So many streams appending at once never wait behind one another for more than
//! one statement, and under load the database does a fraction of the work per call.
//! Calls keep their order, so one stream's chunks keep their call order.
//!
//! Deadlines hold: a call's `queryTimeoutMs` runs from the moment it is made. A call
//! whose deadline passes while it is queued is taken out unsent (so it certainly did not
//! take effect); a batch runs by the earliest deadline of its calls. The queue is bounded
//! (`MOST_QUEUED`): beyond it a call is refused at once with `OVERLOADED`.
//!
//! A row another transaction holds locked never stalls the lane (appends): the lane's
//! statements skip locked rows, so such a call gets no row back. That call (and any call
//! the lane did not store: the waiting form tells it apart), and every later call of the
//! same key (its first parameter: the stream id), then go one by one on a side path (the
//! waiting form in `Combined::skipping`) by their own deadlines, so the key's calls keep
//! their order and other keys go on.
//!
//! A durable append alone on the lane may announce its chunk in its own transaction
//! (`backend/notify_choice.rs` decides, by measuring). Within the store's `notifyBatchMs`
//! of the last that did, it holds its announcement back instead; the next that announces
//! takes what waits in the notifier along, in the same transaction, first (`inside`).
//!
//! `queue.rs`: the queues and the calls in them; `side.rs`: the side path.

mod queue;
mod side;

pub use queue::{Queues, Runner};

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::backend::notify_choice::Pick;
use crate::backend::rows::{Cell, Param, Row};
use crate::error::{Error, Result};
use crate::sql::Statement;
use crate::telemetry;
use queue::{key, Combining, Queued};
use side::hold;

/// queue grows while a statement runs and goes out whole next, which adapts the batch to
/// the load and the round trip (measured here: 1 lane beat 2 and 4 on appends and on
/// conversation saves and loads).
const LANES: usize = 1;
/// Most calls in one combined statement, and about the most parameter bytes.
const MOST_CALLS: usize = 256;
const MOST_BYTES: usize = 4 * 1024 * 1024;
/// Most calls queued for one statement of one store, side paths included.
pub const MOST_QUEUED: usize = 20_000;

/// How a call takes its place, decided on the calling thread so calls keep their order.
enum Place {
    /// It has a lane: send it now (in its notifying form, if so picked).
    Lane(Vec<Param>, Option<Pick>),
    /// It waits in the queue or on its key's side path.
    Queued(u64, oneshot::Receiver<Result<Vec<Row>>>),
}

/// Runs `statement` (which has a combined form) through the pool by `deadline`. The call
/// takes its place (a lane, the queue or its key's side path) here, on the calling
/// thread, so calls keep their order; the returned future sends it.
pub fn run<P: Runner>(
    pool: Arc<P>,
    statement: &Statement,
    params: Vec<Param>,
    deadline: Instant,
) -> impl std::future::Future<Output = Result<Vec<Row>>> + Send + 'static {
    let sql = statement.combined.clone().expect("a combined form");
    let combined = Arc::new(Combining {
        queue: pool.queues().of(&sql),
        sql,
    });
    // The lane's form of a single call.
    let statement = match &combined.sql.skipping {
        Some((one, _)) => one.clone(),
        None => statement.clone(),
    };
    let place = place(&*pool, &combined, params, deadline);
    async move {
        let (params, pick) = match place {
            Err(err) => return Err(err),
            Ok(Place::Queued(ticket, outcome)) => {
                return wait(&*pool, &combined, ticket, outcome, deadline).await
            }
            Ok(Place::Lane(params, pick)) => (params, pick),
        };
        let notifying = combined.sql.notifying.as_ref();
        let (sent, carried) = match (pick, notifying) {
            (Some(pick), Some(notifying)) if pick.inside => match inside(&*pool, &combined, pick) {
                Inside::Held => (&statement, None),
                Inside::Alone => (notifying, None),
                Inside::Carrying(carrying, payloads) => (carrying, Some(payloads)),
            },
            _ => (&statement, None),
        };
        let started = std::time::Instant::now();
        let outcome = match &carried {
            None => pool.query(sent, &params, deadline).await,
            Some(payloads) => {
                let mut with = params.clone();
                with.push(Param::Text(
                    serde_json::to_string(payloads).unwrap_or_default(),
                ));
                let outcome = pool.query(sent, &with, deadline).await;
                // What it carried went out only with its own notification.
                let row = outcome.as_ref().ok().and_then(|rows| rows.first());
                if row.is_none_or(|row| row.int(1).is_none()) {
                    pool.announce_again(payloads.clone());
                }
                outcome
            }
        };
        if let (Some(pick), Ok(rows)) = (pick, &outcome) {
            if !rows.is_empty() {
                let micros = started.elapsed().as_micros() as u64;
                combined.state().notify.record(pick, micros);
            }
        }
        let outcome = match outcome {
            Ok(rows) if combined.sql.skipping.is_some() && is_busy(&rows) => {
                // Its row is locked elsewhere: it goes to the side path, and the lane on.
                let (done, outcome) = oneshot::channel();
                let ticket = {
                    let mut state = combined.state();
                    state.next_ticket += 1;
                    state.next_ticket
                };
                let call = Queued {
                    ticket,
                    params,
                    deadline,
                    done,
                    call: telemetry::current_call(),
                };
                hold(&pool, &combined, vec![call]);
                serve_queue(&pool, &statement, &combined);
                return wait(&*pool, &combined, ticket, outcome, deadline).await;
            }
            outcome => outcome,
        };
        serve_queue(&pool, &statement, &combined);
        outcome
    }
}

/// How a lane append picked to announce inside its own transaction goes.
enum Inside<'a> {
    /// Within `notifyBatchMs` of the last that did (or while a batch of announcements is
    /// on its way): it holds its announcement back, for a later append to carry or the
    /// notifier to send once the time has come.
    Held,
    /// Announcing only its own chunk.
    Alone,
    /// Carrying the announcements waiting in the notifier (`carrying`, `$5`), first.
    Carrying(&'a Statement, Vec<String>),
}

/// Whether a lane append picked to announce inside does so, and what it carries. A trial
/// of the notify choice is never held: it measures the way it was picked.
fn inside<'a, P: Runner>(pool: &P, combined: &'a Combining, pick: Pick) -> Inside<'a> {
    let Some(carrying) = combined.sql.carrying.as_ref() else {
        return Inside::Alone;
    };
    let batch = combined.sql.notify_batch;
    let holds = !pick.is_trial() && !batch.is_zero();
    let now = Instant::now();
    // One lane append at a time (`LANES`): nothing else sets it meanwhile.
    if holds
        && combined
            .state()
            .quiet_until
            .is_some_and(|quiet| now < quiet)
    {
        return Inside::Held;
    }
    let Some(payloads) = pool.take_announcements() else {
        return if holds { Inside::Held } else { Inside::Alone };
    };
    combined.state().quiet_until = Some(now + batch);
    if payloads.is_empty() {
        Inside::Alone
    } else {
        Inside::Carrying(carrying, payloads)
    }
}

fn place<P: Runner>(
    pool: &P,
    combined: &Combining,
    params: Vec<Param>,
    deadline: Instant,
) -> Result<Place> {
    let mut state = combined.state();
    if state.queue.len() + state.held_calls >= MOST_QUEUED {
        return Err(Error::Overloaded(format!(
            "{MOST_QUEUED} calls are already waiting for the database; it is not keeping up. \
             Retry later"
        )));
    }
    let held = key(&params).is_some_and(|k| state.held.contains_key(k));
    if !held && state.in_flight < LANES.min(pool.size()) {
        state.in_flight += 1;
        let pick = combined
            .sql
            .notifying
            .is_some()
            .then(|| state.notify.pick());
        return Ok(Place::Lane(params, pick));
    }
    state.next_ticket += 1;
    let ticket = state.next_ticket;
    let (done, outcome) = oneshot::channel();
    let call = Queued {
        ticket,
        params,
        deadline,
        done,
        call: telemetry::current_call(),
    };
    if held {
        let k = key(&call.params).unwrap_or_default().to_string();
        state.held_calls += 1;
        state.held.entry(k).or_default().push_back(call);
    } else {
        state.queue.push_back(call);
    }
    Ok(Place::Queued(ticket, outcome))
}

/// Waits for a queued call's outcome. At its deadline a call still queued is taken out
/// unsent: it timed out and certainly took no effect. One already sent resolves with its
/// statement, which runs by that same deadline.
async fn wait<P: Runner>(
    pool: &P,
    combined: &Combining,
    ticket: u64,
    mut outcome: oneshot::Receiver<Result<Vec<Row>>>,
    deadline: Instant,
) -> Result<Vec<Row>> {
    match tokio::time::timeout_at(deadline, &mut outcome).await {
        Ok(outcome) => return outcome.unwrap_or(Err(Error::Closed)),
        Err(_) => {
            let mut guard = combined.state();
            let state = &mut *guard;
            if let Some(at) = state.queue.iter().position(|q| q.ticket == ticket) {
                state.queue.remove(at);
                return Err(Error::timed_out_unsent(pool.query_timeout_ms()));
            }
            for calls in state.held.values_mut() {
                // The first call of a side path may be running; the others have not gone.
                if let Some(at) = calls.iter().skip(1).position(|q| q.ticket == ticket) {
                    calls.remove(at + 1);
                    state.held_calls -= 1;
                    return Err(Error::timed_out_unsent(pool.query_timeout_ms()));
                }
            }
        }
    }
    // Sent (or the first of its side path): its statement runs by this deadline too.
    outcome.await.unwrap_or(Err(Error::Closed))
}

/// A combined statement's rows, back to its `calls` calls: each row is led by the
/// 1-based position of its call, which is taken off. Rows of no call are dropped.
fn demux(rows: Vec<Row>, calls: usize) -> Vec<Vec<Row>> {
    let mut each: Vec<Vec<Row>> = (0..calls).map(|_| Vec::new()).collect();
    for Row(mut cells) in rows {
        let Cell::Int(n) = cells.remove(0) else {
            continue;
        };
        if let Some(rows) = usize::try_from(n - 1).ok().and_then(|i| each.get_mut(i)) {
            rows.push(Row(cells));
        }
    }
    each
}

/// Whether the lane did not store the call (locked elsewhere, or not storable: the side
/// path's waiting form tells which).
fn is_busy(rows: &[Row]) -> bool {
    rows.is_empty()
}

/// The lane is free again: it serves the queue, if anything waits, on a task of its own
/// (so the call that freed it hears back at once); else it is given back.
fn serve_queue<P: Runner>(pool: &Arc<P>, statement: &Statement, combined: &Arc<Combining>) {
    if let Some(batch) = next_batch(pool, combined) {
        tokio::spawn(drain(
            pool.clone(),
            statement.clone(),
            combined.clone(),
            batch,
        ));
    }
}

/// The queued calls to send next (the lane stays in flight), or `None` (the lane is given
/// back). Calls whose deadline passed are answered here, unsent; calls of held keys join
/// their side path.
fn next_batch<P: Runner>(pool: &Arc<P>, combined: &Arc<Combining>) -> Option<Vec<Queued>> {
    let now = Instant::now();
    let timeout_ms = pool.query_timeout_ms();
    let mut guard = combined.state();
    let state = &mut *guard;
    let mut batch = Vec::new();
    let mut bytes = 0;
    while let Some(call) = state.queue.pop_front() {
        if call.deadline <= now {
            let _ = call.done.send(Err(Error::timed_out_unsent(timeout_ms)));
            continue;
        }
        if let Some(k) = key(&call.params).filter(|k| state.held.contains_key(*k)) {
            let k = k.to_string();
            state.held_calls += 1;
            state.held.entry(k).or_default().push_back(call);
            continue;
        }
        let size = call.params.iter().map(Param::size).sum::<usize>();
        if !batch.is_empty() && (batch.len() >= MOST_CALLS || bytes + size > MOST_BYTES) {
            state.queue.push_front(call);
            break;
        }
        bytes += size;
        batch.push(call);
    }
    if batch.is_empty() {
        state.in_flight -= 1;
        return None;
    }
    Some(batch)
}

async fn drain<P: Runner>(
    pool: Arc<P>,
    statement: Statement,
    combined: Arc<Combining>,
    mut batch: Vec<Queued>,
) {
    loop {
        send_batch(&pool, &statement, &combined, batch).await;
        match next_batch(&pool, &combined) {
            Some(next) => batch = next,
            None => return,
        }
    }
}

async fn send_batch<P: Runner>(
    pool: &Arc<P>,
    one: &Statement,
    combined: &Arc<Combining>,
    batch: Vec<Queued>,
) {
    let deadline = batch.iter().map(|q| q.deadline).min().expect("a call");
    if batch.len() == 1 {
        let q = batch.into_iter().next().expect("one call");
        let sent = pool.query(one, &q.params, deadline);
        match telemetry::with_calls(vec![q.call], sent).await {
            Ok(rows) if combined.sql.skipping.is_some() && is_busy(&rows) => {
                hold(pool, combined, vec![q])
            }
            outcome => {
                let _ = q.done.send(outcome);
            }
        }
        return;
    }
    let params: Vec<Vec<Param>> = batch.iter().map(|q| q.params.clone()).collect();
    let calls = batch.iter().map(|q| q.call).collect();
    let columns = Param::columns(params);
    let sent = pool.query(&combined.sql.statement, &columns, deadline);
    match telemetry::with_calls(calls, sent).await {
        Ok(rows) => {
            let each = demux(rows, batch.len());
            let mut busy = Vec::new();
            for (q, rows) in batch.into_iter().zip(each) {
                if combined.sql.skipping.is_some() && is_busy(&rows) {
                    busy.push(q);
                } else {
                    let _ = q.done.send(Ok(rows));
                }
            }
            hold(pool, combined, busy);
        }
        Err(err) => {
            for q in batch {
                let _ = q.done.send(Err(err.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests;
