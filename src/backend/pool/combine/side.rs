//! The side path: calls the lane did not store (their row locked elsewhere) go one by
//! one per key with the statement's waiting form, each by its own deadline, so a key's
//! calls keep their order while other keys go on.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::time::Instant;

use super::queue::{key, Combining, Queued, Runner};
use crate::error::Error;

/// Puts busy calls (in call order) on their keys' side paths, ahead of the calls of those
/// keys placed there since (they came later); starts each path that was not running.
pub(super) fn hold<P: Runner>(pool: &Arc<P>, combined: &Arc<Combining>, busy: Vec<Queued>) {
    let mut start = Vec::new();
    let mut state = combined.state();
    for call in busy.into_iter().rev() {
        let Some(k) = key(&call.params).map(str::to_string) else {
            let _ = call.done.send(Ok(Vec::new()));
            continue;
        };
        if !state.held.contains_key(&k) {
            start.push(k.clone());
        }
        state.held_calls += 1;
        state.held.entry(k).or_default().push_front(call);
    }
    drop(state);
    for k in start {
        tokio::spawn(side_path(pool.clone(), combined.clone(), k));
    }
}

/// Sends the held calls of one key one by one with the waiting form, each by its own
/// deadline; ends (and releases the key) once none are left.
async fn side_path<P: Runner>(pool: Arc<P>, combined: Arc<Combining>, k: String) {
    let Some((_, side)) = combined.sql.skipping.clone() else {
        return;
    };
    let timeout_ms = pool.query_timeout_ms();
    loop {
        let (params, deadline) = {
            let state = combined.state();
            match state.held.get(&k).and_then(VecDeque::front) {
                Some(call) => (call.params.clone(), call.deadline),
                None => return,
            }
        };
        let outcome = if deadline <= Instant::now() {
            Err(Error::timed_out_unsent(timeout_ms))
        } else {
            pool.query(&side, &params, deadline).await
        };
        let mut guard = combined.state();
        let state = &mut *guard;
        let Some(calls) = state.held.get_mut(&k) else {
            return;
        };
        if let Some(call) = calls.pop_front() {
            let _ = call.done.send(outcome);
        }
        let empty = calls.is_empty();
        state.held_calls = state.held_calls.saturating_sub(1);
        if empty {
            state.held.remove(&k);
            return;
        }
    }
}
