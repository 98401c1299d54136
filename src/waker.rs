//! One call into JS wakes every reader of a store that a write (or a poll, a release, the
//! store closing) let go on. `pause()` settles a promise per reader, and napi-rs makes a
//! threadsafe function per promise: with 50 readers of one stream in a process, a chunk
//! meant 50 hand-offs to the JS thread, one after another. `pauseThen(token)` instead
//! queues the reader's token here, and the first token queued since JS last looked
//! schedules one call of the store's `onWake` callback, which takes them all.
//!
//! A write settled by a JS client (`backend/js/`) wakes its readers on the JS thread
//! itself: those tokens go to `onWake` directly once the settle is done (`settling`), with
//! `later` true, and skip the threadsafe function's round through the event loop.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use napi::bindgen_prelude::{FnArgs, Function, FunctionRef};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};

/// `onWake(tokens, false)`: called on the JS thread with the tokens queued since the last
/// call.
/// Weak: it never keeps the process alive (`lib/stream-store.cjs` does, while a reader
/// waits).
type WakeCall = ThreadsafeFunction<(), (), WakeArgs, Status, false, true>;

/// `(tokens, later)`.
type WakeArgs = FnArgs<(Vec<u32>, bool)>;

/// `onWake(tokens, later)`, called directly on the JS thread.
type DirectCall = FunctionRef<WakeArgs, ()>;

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
struct Inner {
    queue: Mutex<Queue>,
    direct: OnceLock<DirectCall>,
}

#[derive(Default)]
pub struct Waker {
    inner: Arc<Inner>,
    call: OnceLock<WakeCall>,
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// On the JS thread while a JS client's statement settles: the wakers whose calls
    /// wait for the settle to end.
    static SETTLING: RefCell<Option<Vec<Arc<Inner>>>> = const { RefCell::new(None) };
}

/// The store whose chunk is being stored (`feeding`), and the tokens of its readers fed.
struct Feeding {
    store: usize,
    tokens: Vec<u32>,
}

thread_local! {
    /// On the JS thread while a chunk sent from JS is stored (`sent_appends.rs`): the
    /// tokens of parked readers handed that chunk instead of being woken (`feeding`).
    static FEEDING: RefCell<Option<Feeding>> = const { RefCell::new(None) };
}

/// Runs `append` (on the JS thread, for a chunk JS holds) while a parked reader of the
/// same store (`store`: its identity, see `feeds`) right before that chunk may take it
/// without being woken (`wakeups::Parked::feeding`): its cursor moves past it, it stays
/// parked, and its token comes back here. JS then hands the reader the chunk itself: no
/// page crosses, no wait is registered again. Readers of other stores (whose tokens this
/// store's JS does not know) are woken as ever.
pub fn feeding<T>(store: usize, append: impl FnOnce() -> T) -> (T, Vec<u32>) {
    let now = Feeding {
        store,
        tokens: Vec::new(),
    };
    let outer = FEEDING.with(|fed| fed.borrow_mut().replace(now));
    let appended = append();
    let fed = FEEDING.with(|fed| std::mem::replace(&mut *fed.borrow_mut(), outer));
    (appended, fed.map(|fed| fed.tokens).unwrap_or_default())
}

/// Whether a chunk being stored now may be handed to parked readers (`feeding`).
pub fn is_feeding() -> bool {
    FEEDING.with(|fed| fed.borrow().is_some())
}

/// Whether the chunk being stored now is `store`'s (`feeding`).
pub fn feeds(store: usize) -> bool {
    FEEDING.with(|fed| fed.borrow().as_ref().is_some_and(|fed| fed.store == store))
}

/// Records that the reader of `token` took the chunk being stored (`feeding`).
pub fn fed(token: u32) {
    FEEDING.with(|fed| {
        if let Some(fed) = fed.borrow_mut().as_mut() {
            fed.tokens.push(token);
        }
    });
}

/// Runs `settle` (on the JS thread), then calls `onWake` directly for the readers it woke.
pub fn settling<T>(env: &Env, settle: impl FnOnce() -> T) -> T {
    let outer = SETTLING.with(|due| due.borrow_mut().replace(Vec::new()));
    let settled = settle();
    let due = SETTLING.with(|due| std::mem::replace(&mut *due.borrow_mut(), outer));
    for inner in due.unwrap_or_default() {
        let tokens = lock(&inner.queue).take();
        if let Some(direct) = inner.direct.get() {
            // An env going away takes its readers with it: nothing to wake then.
            let _ = direct
                .borrow_back(env)
                .and_then(|f| f.call(FnArgs::from((tokens, true))));
        }
    }
    settled
}

impl Waker {
    /// Sets the JS callback; once per store.
    pub fn set(&self, callback: Function<WakeArgs, ()>) -> napi::Result<()> {
        let inner = self.inner.clone();
        let direct = callback.create_ref()?;
        let call = callback
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(move |_| Ok(FnArgs::from((lock(&inner.queue).take(), false))))?;
        let set = self.call.set(call).is_ok() && self.inner.direct.set(direct).is_ok();
        if set {
            Ok(())
        } else {
            Err(napi::Error::from_reason("onWake was already set"))
        }
    }

    pub fn is_set(&self) -> bool {
        self.call.get().is_some()
    }

    /// Queues `token` for the next call of the callback, scheduling that call if none is
    /// on its way: at the end of the settle running on this thread, if there is one.
    pub fn wake(&self, token: u32) {
        let Some(call) = self.call.get() else { return };
        if !lock(&self.inner.queue).push(token) {
            return;
        }
        let after_settle = SETTLING.with(|due| match due.borrow_mut().as_mut() {
            Some(due) => {
                due.push(self.inner.clone());
                true
            }
            None => false,
        });
        if after_settle {
            return;
        }
        if call.call((), ThreadsafeFunctionCallMode::NonBlocking) != Status::Ok {
            // The environment is going away: nothing will take the tokens.
            lock(&self.inner.queue).scheduled = false;
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
