//! The pool's connection budget: connections opened on demand, closed when idle, and
//! never more than the server can spare.
//!
//! - **On demand.** A call takes an idle connection if there is one. If not, it waits for
//!   one to come back; only a call that has waited `GROW_AFTER` lets the pool open one
//!   more (one at a time, up to `poolSize`). Ten readers woken together share a couple of
//!   connections for the few milliseconds their pages take, instead of opening ten.
//! - **Within the server's means.** Each new connection reports, in the same round trip
//!   that sets it up (`pooler.rs`), how many of `max_connections` are free. With fewer than
//!   the reserved slots plus a tenth of `max_connections` left, the pool stops growing for
//!   a while: sixteen processes sharing one server settle well below its limit instead of
//!   racing to it.
//! - **Refused (53300, "too many clients").** The call does not fail: it waits for a
//!   connection the pool has, or, holding none, tries again with back-off, until its
//!   deadline (`queryTimeoutMs`).
//! - **Idle.** A connection unused for `idleTimeoutMs` is closed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a call waits for a busy connection before the pool may open another.
pub const GROW_AFTER: Duration = Duration::from_millis(5);
/// How long the pool does not grow after a refusal or when the server is nearly full.
const HOLD: Duration = Duration::from_secs(2);

pub struct Budget {
    max: usize,
    /// Connections the pool may hold now, 1 to `max`.
    cap: AtomicUsize,
    /// Connections being opened.
    pub opening: AtomicUsize,
    /// Calls waiting for a connection.
    pub waiting: AtomicUsize,
    /// Signalled when a call gives its connection back.
    pub returned: Notify,
    times: Mutex<Times>,
    /// Connection attempts the server refused with 53300.
    pub refused: AtomicU64,
}

struct Times {
    grew_at: Instant,
    hold_until: Instant,
}

impl Budget {
    pub fn new(max: usize) -> Self {
        let now = Instant::now();
        Budget {
            max,
            cap: AtomicUsize::new(1),
            opening: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            returned: Notify::new(),
            times: Mutex::new(Times {
                grew_at: now,
                hold_until: now,
            }),
            refused: AtomicU64::new(0),
        }
    }

    fn times(&self) -> std::sync::MutexGuard<'_, Times> {
        self.times.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a new connection may be opened now, with `open` connections held.
    pub fn may_open(&self, open: usize) -> bool {
        open + self.opening.load(Ordering::Acquire) < self.cap.load(Ordering::Acquire)
    }

    /// A call has waited `GROW_AFTER` for a connection: the pool may hold one more, unless
    /// it grew moments ago, is at `poolSize`, or is holding back.
    pub fn waited(&self) {
        let now = Instant::now();
        let mut times = self.times();
        if now < times.hold_until || now.duration_since(times.grew_at) < GROW_AFTER {
            return;
        }
        let cap = self.cap.load(Ordering::Acquire);
        if cap < self.max {
            self.cap.store(cap + 1, Ordering::Release);
            times.grew_at = now;
        }
    }

    /// The pool holds `open` connections and should not grow for a while: the server
    /// refused one (`refused`) or has few slots left.
    pub fn hold(&self, open: usize, refused: bool) {
        if refused {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        let floor = (open + self.opening.load(Ordering::Acquire)).max(1);
        self.cap.store(floor.min(self.max), Ordering::Release);
        // Some jitter, so that processes do not all try again at once.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = Duration::from_millis(u64::from(nanos % 500));
        self.times().hold_until = Instant::now() + HOLD + jitter;
    }

    /// Idle connections were closed: the pool holds `open` now.
    pub fn shrunk(&self, open: usize) {
        let floor = (open + self.opening.load(Ordering::Acquire)).max(1);
        let _ = self
            .cap
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cap| {
                Some(cap.min(floor.max(1)))
            });
    }

    pub fn cap(&self) -> usize {
        self.cap.load(Ordering::Acquire)
    }
}

/// Counts a waiting call while it lives.
pub struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    pub fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_one_at_a_time_and_holds_back_when_refused() {
        let budget = Budget::new(3);
        assert!(budget.may_open(0));
        assert!(
            !budget.may_open(1),
            "one connection until a call has waited"
        );
        std::thread::sleep(GROW_AFTER);
        budget.waited();
        budget.waited();
        assert_eq!(budget.cap(), 2, "one more per GROW_AFTER");
        budget.hold(2, true);
        assert_eq!(budget.refused.load(Ordering::Relaxed), 1);
        std::thread::sleep(GROW_AFTER);
        budget.waited();
        assert_eq!(budget.cap(), 2, "no growth while holding back");
        budget.shrunk(0);
        assert_eq!(budget.cap(), 1);
    }
}
