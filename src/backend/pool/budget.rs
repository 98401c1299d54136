//! The pool's connection budget: connections opened on demand, closed when idle, and
//! never more than the server can spare.
//!
//! - **On demand.** A call takes an idle connection if there is one. If not, it waits for
//!   one to come back; only a call that has waited `GROW_AFTER` lets the pool open one
//!   more (one at a time, up to `poolSize`). Ten readers woken together share a couple of
//!   connections for the few milliseconds their pages take, instead of opening ten.
//! - **Within the server's means.** Each new connection reports, in the same round trip
//!   that sets it up (`pooler.rs`), how many of `max_connections` are spare (beyond the
//!   reserved slots and a tenth kept free). The pool grows only while the server has at
//!   least twice as many spare as the pool already holds: a process that holds many stops
//!   first, so sixteen processes sharing one server settle at a fair share each, below its
//!   limit, and one that starts late still finds room.
//! - **Never waiting to measure.** Without a measure from the last `FRESH` (a pool that
//!   was quiet, then finds its connections busy), the pool grows by one at once: the
//!   connection it opens measures as it is set up. Measuring through the pool instead
//!   would queue behind the very connections that are busy (a statement waiting on a row
//!   lock would hold every call on every stream). One such growth per `FRESH` at most, so
//!   an old measure never adds more than one connection; a full server refuses it (below).
//! - **Refused (53300, "too many clients").** The call does not fail: it waits for a
//!   connection the pool has; holding none, the pool tries again with back-off (one
//!   attempt at a time for all its callers), until the call's deadline
//!   (`queryTimeoutMs`). The pool does not grow for a while.
//! - **Idle.** A connection unused for `idleTimeoutMs` is closed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a call waits for a busy connection before the pool may open another.
pub const GROW_AFTER: Duration = Duration::from_millis(10);
/// How long the pool does not grow after a refusal.
const HOLD: Duration = Duration::from_secs(2);
/// How long a measure of the server's spare connections counts.
const FRESH: Duration = Duration::from_millis(500);

/// Back-off between attempts while the server refuses and the pool holds nothing.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_AT_MOST: Duration = Duration::from_secs(1);

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
    /// No growth before this (after a refusal).
    hold_until: Instant,
    /// No attempt to open before this (refused while holding nothing).
    retry_at: Instant,
    retry_backoff: Duration,
    /// The server's spare connections when a connection last opened, and when.
    spare: Option<(i64, Instant)>,
}

/// Some jitter, so that processes do not all try again at once.
fn jitter(most_ms: u64) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(u64::from(nanos) % most_ms.max(1))
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
                retry_at: now,
                retry_backoff: RETRY_FIRST,
                spare: None,
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
            && Instant::now() >= self.times().retry_at
    }

    /// A call has waited `GROW_AFTER` for a connection: whether the pool may hold one
    /// more. Not if it grew moments ago, is at `poolSize`, is holding back, or the server
    /// has fewer spare connections than twice what the pool holds (twice: processes that
    /// grow at the same moment each add one before they measure again). Without a fresh
    /// measure it grows by one, at most once per `FRESH` (see the module's doc).
    pub fn waited(&self) -> bool {
        let now = Instant::now();
        let mut times = self.times();
        if now < times.hold_until || now.duration_since(times.grew_at) < GROW_AFTER {
            return false;
        }
        let cap = self.cap.load(Ordering::Acquire);
        if cap >= self.max {
            return false;
        }
        let enough = match times.spare {
            Some((spare, at)) if now.duration_since(at) < FRESH => spare >= 2 * cap as i64,
            // No fresh measure: the connection opened now brings one.
            _ => now.duration_since(times.grew_at) >= FRESH,
        };
        if !enough {
            return false;
        }
        self.cap.store(cap + 1, Ordering::Release);
        times.grew_at = now;
        // The next growth needs a new measure (the connection it opens takes one).
        times.spare = None;
        true
    }

    /// The server has `spare` connections to spare now.
    #[cfg(test)]
    pub fn measured(&self, spare: i64) {
        self.times().spare = Some((spare, Instant::now()));
    }

    /// A connection opened; the server has `spare` connections to spare, if it said.
    pub fn opened(&self, spare: Option<i64>) {
        let mut times = self.times();
        times.retry_backoff = RETRY_FIRST;
        if let Some(spare) = spare {
            times.spare = Some((spare, Instant::now()));
        }
    }

    /// The server refused a connection as full; the pool holds `open`.
    pub fn refused(&self, open: usize) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let floor = (open + self.opening.load(Ordering::Acquire)).max(1);
        self.cap.store(floor.min(self.max), Ordering::Release);
        let now = Instant::now();
        let mut times = self.times();
        times.hold_until = now + HOLD + jitter(500);
        if open == 0 {
            let backoff = times.retry_backoff;
            times.retry_at = now + backoff + jitter(backoff.as_millis() as u64 / 2);
            times.retry_backoff = (backoff * 2).min(RETRY_AT_MOST);
        }
    }

    /// Idle connections were closed: the pool holds `open` now.
    pub fn shrunk(&self, open: usize) {
        let floor = (open + self.opening.load(Ordering::Acquire)).max(1);
        let _ = self
            .cap
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cap| {
                Some(cap.min(floor))
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
        budget.measured(100);
        assert!(budget.waited());
        assert!(!budget.waited(), "one more per GROW_AFTER");
        assert_eq!(budget.cap(), 2);
        std::thread::sleep(GROW_AFTER);
        assert!(
            !budget.waited(),
            "each growth measures again: no second growth on an old measure"
        );
        budget.refused(2);
        assert_eq!(budget.refused.load(Ordering::Relaxed), 1);
        budget.measured(100);
        std::thread::sleep(GROW_AFTER);
        assert!(!budget.waited(), "no growth while holding back");
        budget.shrunk(0);
        assert_eq!(budget.cap(), 1);
    }

    #[test]
    fn without_a_fresh_measure_grows_by_one_at_once_then_waits_for_a_measure() {
        let budget = Budget::new(10);
        // Quiet for longer than a measure counts: the pool grows without measuring
        // (a measure through the pool would wait behind its busy connections).
        std::thread::sleep(FRESH + GROW_AFTER);
        assert!(budget.waited(), "grows on no measure");
        assert_eq!(budget.cap(), 2);
        std::thread::sleep(GROW_AFTER * 2);
        assert!(
            !budget.waited(),
            "not again until the new connection measured"
        );
        budget.opened(Some(100));
        assert!(budget.waited(), "the new connection's measure lets it grow");
        assert_eq!(budget.cap(), 3);
    }

    #[test]
    fn refused_while_holding_nothing_waits_before_the_next_attempt() {
        let budget = Budget::new(3);
        budget.refused(0);
        assert!(!budget.may_open(0), "backing off");
        std::thread::sleep(RETRY_FIRST * 2);
        assert!(budget.may_open(0));
    }

    #[test]
    fn stops_growing_when_the_server_spares_fewer_than_twice_the_pool() {
        let budget = Budget::new(10);
        budget.measured(2);
        std::thread::sleep(GROW_AFTER);
        assert!(budget.waited(), "2 spare, 1 held");
        budget.measured(3);
        std::thread::sleep(GROW_AFTER);
        assert!(!budget.waited(), "3 spare, 2 held");
        assert_eq!(budget.cap(), 2);
    }
}
