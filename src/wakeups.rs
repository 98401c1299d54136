//! In-process wake-ups: a write through any store of this process (append, stop,
//! complete, fail), or one another process announced (`backend/notify.rs`), wakes the
//! readers of that stream at once, whatever backend either side uses, and hands them
//! what was written when it is known (`tail.rs`).
//!
//! Each stream that has readers gets a `Hub`, keyed by the status table (as
//! `sql::wake_key` spells it) and the stream id: its tail and a version counter (a
//! `watch` channel). A reader marks the version seen each time it looks at the tail, in
//! the same step, so a write that lands while its query is in flight still wakes it. Two
//! tables of the same name in different databases share a hub; their chunks are told
//! apart by their source, so that costs a spare query, never a wrong chunk.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use tokio::sync::watch;

use crate::tail::{Committed, Look, Source, Tail};

type Key = (String, String);

/// This process, as named in the NOTIFYs it sends, so that its own listener can pass
/// over them (its readers were woken at once already).
pub fn origin() -> &'static str {
    static ORIGIN: LazyLock<String> = LazyLock::new(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{:x}-{nanos:x}", std::process::id())
    });
    &ORIGIN
}

/// One stream's wake-ups and what is known of its newest chunks (`tail.rs`). Every
/// change of the tail bumps its version, which is also the wake-up counter readers
/// watch: both change under the tail's lock, so a reader that looked at the tail and
/// marked the version seen in one step cannot miss a change.
pub struct Hub {
    tail: Mutex<Tail>,
    version: watch::Sender<u64>,
    /// Readers waiting off the tokio runtime (`reader/pause.rs`): the next change wakes them.
    parked: Mutex<Vec<Arc<Parked>>>,
    /// The stream was made anew in this process (through any client) since a finish of it
    /// was last heard: a read replica showing it finished may show an older generation.
    made_anew: std::sync::atomic::AtomicBool,
}

impl Hub {
    /// Changes the tail and wakes the stream's readers.
    fn change(&self, change: impl FnOnce(&mut Tail) -> u64) {
        self.change_feeding(None, change);
    }

    /// `change`, for chunk `chunk` (its source and seq) when the change appended one: a
    /// parked reader that takes it while it is fed (`waker::feeding`) stays parked.
    fn change_feeding(&self, chunk: Option<(Source, u32)>, change: impl FnOnce(&mut Tail) -> u64) {
        let mut tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        let version = change(&mut tail);
        self.version.send_replace(version);
        drop(tail);
        self.unpark(chunk);
    }

    /// Wakes the readers parked here, but those that take `chunk` (see `change_feeding`).
    /// A reader is fed under the lock of the parked readers, so no change slips between
    /// its feed and its staying parked.
    fn unpark(&self, chunk: Option<(Source, u32)>) {
        let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        let woken = match chunk {
            Some((source, seq)) if crate::waker::is_feeding() => {
                let (kept, woken) = std::mem::take(&mut *parked)
                    .into_iter()
                    .partition(|reader: &Arc<Parked>| reader.feed(source, seq));
                *parked = kept;
                woken
            }
            _ => std::mem::take(&mut *parked),
        };
        drop(parked);
        for reader in woken {
            reader.wake();
        }
    }

    /// See `Tail::fetched`.
    pub fn fetched(&self, fetch: &Fetched, chunks: &[(u32, &str)], total: i64, active: bool) {
        self.change(|tail| {
            tail.fetched(
                fetch.source,
                fetch.after,
                fetch.since,
                chunks,
                total,
                active,
            )
        });
    }

    /// See `Tail::replica_may_serve`.
    pub fn replica_may_serve(&self, source: Source, total: i64) -> bool {
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        let made_anew = self.made_anew.load(std::sync::atomic::Ordering::Acquire);
        tail.replica_may_serve(source, total, made_anew)
    }

    /// See `Tail::fetch_failed`.
    pub fn fetch_failed(&self, fetch: &Fetched) {
        self.change(|tail| tail.fetch_failed(fetch.after, fetch.since));
    }
}

/// What a parked reader does with a chunk stored while it waits (`Parked::feeding`):
/// takes it (true: it stays parked) or not (it is woken).
type Feed = Box<dyn Fn(Source, u32) -> bool + Send + Sync>;

/// A reader waiting off the tokio runtime: what wakes it, run once, by the first of its
/// stream's next change, its release, or its store closing.
pub struct Parked {
    wake: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    feed: Option<Feed>,
}

impl Parked {
    pub fn new(wake: impl FnOnce() + Send + 'static) -> Arc<Self> {
        Arc::new(Parked {
            wake: Mutex::new(Some(Box::new(wake))),
            feed: None,
        })
    }

    /// A parked reader that may take a chunk stored here while it waits, instead of being
    /// woken by it (`waker::feeding`): `feed(source, seq)` says whether it took it.
    pub fn feeding(
        wake: impl FnOnce() + Send + 'static,
        feed: impl Fn(Source, u32) -> bool + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Parked {
            wake: Mutex::new(Some(Box::new(wake))),
            feed: Some(Box::new(feed)),
        })
    }

    pub fn wake(&self) {
        let wake = self
            .wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(wake) = wake {
            wake();
        }
    }

    /// Whether it took chunk `seq` (and stays parked); never once woken.
    fn feed(&self, source: Source, seq: u32) -> bool {
        let Some(feed) = &self.feed else { return false };
        let wake = self.wake.lock().unwrap_or_else(PoisonError::into_inner);
        wake.is_some() && feed(source, seq)
    }
}

/// A reader's query: what it reads after, through which source, begun at which version.
pub struct Fetched {
    pub source: Source,
    pub after: i32,
    pub since: u64,
}

#[derive(Default)]
struct Registry {
    streams: HashMap<Key, Weak<Hub>>,
    /// Size at which entries of streams no reader reads any more are swept out
    /// (doubling, so the sweeps cost O(1) per subscription).
    sweep_at: usize,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Default::default);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A reader's interest in one stream; dropping it ends the interest.
pub struct Subscription {
    hub: Arc<Hub>,
    receiver: watch::Receiver<u64>,
}

impl Subscription {
    /// What the reader does next (see `Tail::look`); every change so far counts as seen.
    pub fn look(
        &mut self,
        source: Source,
        after: i32,
        since: &mut u64,
        must_look: &mut bool,
        fresh: bool,
    ) -> Look {
        let mut tail = self.hub.tail.lock().unwrap_or_else(PoisonError::into_inner);
        let look = tail.look(source, after, since, must_look, fresh);
        let _ = self.receiver.borrow_and_update();
        drop(tail);
        look
    }

    /// Marks every change so far as seen.
    #[cfg(test)]
    pub fn mark_seen(&mut self) {
        let _ = self.receiver.borrow_and_update();
    }

    /// The stream's version now: what a new reader counts news from.
    pub fn version(&self) -> u64 {
        self.hub
            .tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .version()
    }

    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// Wakes `reader` at the first change not yet seen: at once if there is one. The
    /// check and the parking are one step under the hub's lock of its parked readers,
    /// which a change takes after its version is out, so no change slips between.
    pub fn park(&self, reader: Arc<Parked>) {
        let mut parked = self
            .hub
            .parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.receiver.has_changed().unwrap_or(true) {
            drop(parked);
            reader.wake();
        } else {
            parked.push(reader);
        }
    }

    /// Resolves at the first change not yet seen (at once if there is one).
    pub async fn written(&mut self) {
        // The sender lives in `self.hub`, so `changed()` cannot fail.
        let _ = self.receiver.changed().await;
    }
}

pub fn subscribe(table: &str, id: &str) -> Subscription {
    let mut registry = registry();
    let key = (table.to_string(), id.to_string());
    let hub = match registry.streams.get(&key).and_then(Weak::upgrade) {
        Some(hub) => hub,
        None => {
            if registry.streams.len() >= registry.sweep_at {
                registry.streams.retain(|_, hub| hub.strong_count() > 0);
                registry.sweep_at = (registry.streams.len() * 2).max(64);
            }
            let hub = Arc::new(Hub {
                tail: Mutex::default(),
                version: watch::Sender::new(0),
                parked: Mutex::default(),
                made_anew: Default::default(),
            });
            registry.streams.insert(key, Arc::downgrade(&hub));
            hub
        }
    };
    let receiver = hub.version.subscribe();
    Subscription { hub, receiver }
}

/// The stream's hub, if it has readers in this process.
fn hub(table: &str, id: &str) -> Option<Arc<Hub>> {
    let registry = registry();
    if registry.streams.is_empty() {
        return None;
    }
    registry
        .streams
        .get(&(table.to_string(), id.to_string()))
        .and_then(Weak::upgrade)
}

/// Wakes this process's readers of the stream, if it has any: it was written, and what
/// was written is not known here (they look in the database).
pub fn wake(table: &str, id: &str) {
    if let Some(hub) = hub(table, id) {
        hub.change(Tail::unknown);
    }
}

/// Chunk `seq` of the stream was committed (at `committed`): its readers at `seq - 1`
/// take it from here.
pub fn appended(
    table: &str,
    id: &str,
    source: Source,
    seq: u32,
    data: &Arc<str>,
    committed: Committed,
) {
    if let Some(hub) = hub(table, id) {
        hub.change_feeding(Some((source, seq)), |tail| {
            tail.appended_at(source, seq, data.clone(), committed)
        });
    }
}

/// The stream finished with `total` chunks: its readers there end.
pub fn finished(table: &str, id: &str, source: Source, total: i64) {
    if let Some(hub) = hub(table, id) {
        hub.made_anew
            .store(false, std::sync::atomic::Ordering::Release);
        hub.change(|tail| tail.finished(source, total));
    }
}

/// The stream was made anew: nothing known of the old one holds.
pub fn created(table: &str, id: &str) {
    if let Some(hub) = hub(table, id) {
        hub.made_anew
            .store(true, std::sync::atomic::Ordering::Release);
        hub.change(Tail::created);
    }
}

/// Wakes every parked reader in this process, its stream unchanged (a store closed).
pub fn unpark_all() {
    let hubs: Vec<_> = registry()
        .streams
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    for hub in hubs {
        hub.unpark(None);
    }
}

/// Wakes every reader in this process (after a time in which writes may have gone
/// unannounced).
pub fn wake_all() {
    let hubs: Vec<_> = registry()
        .streams
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    for hub in hubs {
        hub.change(Tail::unknown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_wakes_readers_of_that_stream_only() {
        let mut a = subscribe("t", "wake-a");
        let mut b = subscribe("t", "wake-b");
        a.mark_seen();
        b.mark_seen();
        wake("t", "wake-a");
        tokio::time::timeout(std::time::Duration::from_secs(1), a.written())
            .await
            .expect("a was woken");
        let b_woken = tokio::time::timeout(std::time::Duration::from_millis(50), b.written()).await;
        assert!(b_woken.is_err(), "b was not written to");
    }

    #[tokio::test]
    async fn a_write_before_the_wait_is_not_missed() {
        let mut a = subscribe("t", "early");
        a.mark_seen();
        wake("t", "early"); // lands while the reader's query is in flight
        tokio::time::timeout(std::time::Duration::from_secs(1), a.written())
            .await
            .expect("the earlier write still wakes");
    }

    #[test]
    fn a_parked_reader_is_woken_once_by_the_next_change_or_at_once_by_an_unseen_one() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let woken = Arc::new(AtomicUsize::new(0));
        let parked = || {
            let woken = woken.clone();
            Parked::new(move || {
                woken.fetch_add(1, Ordering::SeqCst);
            })
        };
        let mut a = subscribe("t", "park-a");
        let _b = subscribe("t", "park-b");
        a.mark_seen();
        a.park(parked());
        wake("t", "park-b");
        assert_eq!(woken.load(Ordering::SeqCst), 0, "another stream's change");
        wake("t", "park-a");
        wake("t", "park-a");
        assert_eq!(woken.load(Ordering::SeqCst), 1, "woken once");
        // A change it has not looked at yet (it landed while its query was in flight).
        a.park(parked());
        assert_eq!(woken.load(Ordering::SeqCst), 2, "woken at once");
        a.mark_seen();
        let reader = parked();
        a.park(reader.clone());
        unpark_all(); // a store closed
        reader.wake(); // and it was released too: still once
        assert_eq!(woken.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_feeding_reader_takes_its_own_stores_chunk_and_stays_parked() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let woken = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(1)); // the seq the reader takes next
        let reader = {
            let (woken, next) = (woken.clone(), next.clone());
            Parked::feeding(
                move || {
                    woken.fetch_add(1, Ordering::SeqCst);
                },
                move |source, seq| {
                    let takes = source == 7 && seq as usize == next.load(Ordering::SeqCst);
                    if takes {
                        next.fetch_add(1, Ordering::SeqCst);
                        crate::waker::fed(42);
                    }
                    takes
                },
            )
        };
        let mut a = subscribe("t", "feed-a");
        a.mark_seen();
        a.park(reader.clone());
        let data: Arc<str> = Arc::from("x");
        let at = Committed::default();
        let ((), fed) = crate::waker::feeding(1, || appended("t", "feed-a", 7, 1, &data, at));
        assert_eq!(fed, vec![42], "it took chunk 1");
        let ((), fed) = crate::waker::feeding(1, || appended("t", "feed-a", 7, 2, &data, at));
        assert_eq!(fed, vec![42], "and chunk 2, still parked");
        assert_eq!(woken.load(Ordering::SeqCst), 0);
        // Stored outside a feeding (through the pool, or heard): it is woken.
        appended("t", "feed-a", 7, 3, &data, at);
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        // Once woken it takes nothing more, even while parked in the list again.
        a.mark_seen();
        a.park(reader.clone());
        let ((), fed) = crate::waker::feeding(1, || appended("t", "feed-a", 7, 4, &data, at));
        assert!(fed.is_empty());
        assert_eq!(
            next.load(Ordering::SeqCst),
            3,
            "its feed was not even asked"
        );
    }

    #[test]
    fn streams_without_readers_are_forgotten() {
        for i in 0..1000 {
            drop(subscribe("forget", &i.to_string()));
        }
        let _live = subscribe("forget", "live");
        let registry = registry();
        let left = registry
            .streams
            .keys()
            .filter(|(t, _)| t == "forget")
            .count();
        assert!(left < 200, "{left} entries of streams nobody reads");
        assert!(registry
            .streams
            .contains_key(&("forget".to_string(), "live".to_string())));
    }
}
