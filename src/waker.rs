//! One call into JS wakes every reader of a store that a write (or a poll, a release, the
//! store closing) let go on. `pause()` settles a promise per reader, and napi-rs makes a
//! threadsafe function per promise: with 50 readers of one stream in a process, a chunk
//! meant 50 hand-offs to the JS thread, one after another. `pauseThen(token)` instead
//! queues the reader's token here, and the first token queued since JS last looked
//! schedules one call of the store's `onWake` callback, which takes them all.

use std::sync::{Mutex, OnceLock, PoisonError};

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;

/// `onWake(tokens)`: called on the JS thread with the tokens queued since the last call.
/// Weak: it never keeps the process alive (`lib/stream-store.cjs` does, while a reader
/// waits).
type WakeCall = ThreadsafeFunction<(), (), Vec<u32>, Status, false, true>;

/// The tokens waiting to go to JS, and whether a call to take them is on its way.
#[derive(Default)]
struct Queue {
    tokens: Vec<u32>,
    /// A call is on its way to the JS thread and will take what is queued.
    scheduled: bool,
}

impl Queue {
    /// Queues `token`; true if a call must now be scheduled to take it.
    fn push(&mut self, token: u32) -> bool {
        self.tokens.push(token);
        !std::mem::replace(&mut self.scheduled, true)
    }

    /// What the scheduled call takes: every token queued so far. A token queued after
    /// this schedules a call of its own.
    fn take(&mut self) -> Vec<u32> {
        self.scheduled = false;
        std::mem::take(&mut self.tokens)
    }
}

#[derive(Default)]
pub struct Waker {
    queue: std::sync::Arc<Mutex<Queue>>,
    call: OnceLock<WakeCall>,
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Waker {
    /// Sets the JS callback; once per store.
    pub fn set(&self, callback: Function<Vec<u32>, ()>) -> napi::Result<()> {
        let queue = self.queue.clone();
        let call = callback
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(move |_| Ok(lock(&queue).take()))?;
        self.call
            .set(call)
            .map_err(|_| napi::Error::from_reason("onWake was already set"))
    }

    pub fn is_set(&self) -> bool {
        self.call.get().is_some()
    }

    /// Queues `token` for the next call of the callback, scheduling that call if none is
    /// on its way.
    pub fn wake(&self, token: u32) {
        let Some(call) = self.call.get() else { return };
        if !lock(&self.queue).push(token) {
            return;
        }
        if call.call((), ThreadsafeFunctionCallMode::NonBlocking) != Status::Ok {
            // The environment is going away: nothing will take the tokens.
            lock(&self.queue).scheduled = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Queue;

    #[test]
    fn one_call_takes_every_token_queued_before_it_runs() {
        let mut queue = Queue::default();
        assert!(queue.push(1), "the first token schedules a call");
        assert!(!queue.push(2), "later ones ride on it");
        assert!(!queue.push(3));
        assert_eq!(queue.take(), vec![1, 2, 3]);
        assert!(queue.take().is_empty());
    }

    #[test]
    fn a_token_queued_after_the_call_took_schedules_another() {
        let mut queue = Queue::default();
        assert!(queue.push(7));
        assert_eq!(queue.take(), vec![7]);
        assert!(queue.push(8), "nothing is on its way for it");
        assert!(!queue.push(9));
        assert_eq!(queue.take(), vec![8, 9]);
    }
}
