//! In-process wake-ups: a write through any store of this process (append, stop,
//! complete, fail) wakes the readers of that stream at once, whatever backend either
//! side uses. Readers still poll at `pollIntervalMs` as the fallback for writes made by
//! other processes.
//!
//! Each stream that has readers gets a version counter (a `watch` channel), keyed by the
//! status table and the stream id. A reader marks the version it has seen before each
//! query, so a write that lands while the query is in flight still wakes it: no chunk
//! waits out a poll interval. Two tables of the same name in different databases share
//! a key; the cost of that is a spare query, never a missed chunk.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};

use tokio::sync::watch;

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

#[derive(Default)]
struct Registry {
    streams: HashMap<Key, Weak<watch::Sender<u64>>>,
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
    _sender: Arc<watch::Sender<u64>>,
    receiver: watch::Receiver<u64>,
}

impl Subscription {
    /// Marks every write so far as seen.
    pub fn mark_seen(&mut self) {
        self.receiver.borrow_and_update();
    }

    /// Whether a write not yet marked seen happened.
    pub fn unseen(&self) -> bool {
        self.receiver.has_changed().unwrap_or(true)
    }

    /// Resolves at the first write not yet marked seen (at once if there is one).
    pub async fn written(&mut self) {
        // The sender lives in `self`, so `changed()` cannot fail.
        let _ = self.receiver.changed().await;
    }
}

pub fn subscribe(table: &str, id: &str) -> Subscription {
    let mut registry = registry();
    let key = (table.to_string(), id.to_string());
    let sender = match registry.streams.get(&key).and_then(Weak::upgrade) {
        Some(sender) => sender,
        None => {
            if registry.streams.len() >= registry.sweep_at {
                registry
                    .streams
                    .retain(|_, sender| sender.strong_count() > 0);
                registry.sweep_at = (registry.streams.len() * 2).max(64);
            }
            let sender = Arc::new(watch::Sender::new(0));
            registry.streams.insert(key, Arc::downgrade(&sender));
            sender
        }
    };
    let receiver = sender.subscribe();
    Subscription {
        _sender: sender,
        receiver,
    }
}

/// Wakes this process's readers of the stream, if it has any.
pub fn wake(table: &str, id: &str) {
    let registry = registry();
    if registry.streams.is_empty() {
        return;
    }
    if let Some(sender) = registry
        .streams
        .get(&(table.to_string(), id.to_string()))
        .and_then(Weak::upgrade)
    {
        sender.send_modify(|version| *version += 1);
    }
}

/// Wakes every reader in this process (after a time in which writes may have gone
/// unannounced).
pub fn wake_all() {
    for sender in registry().streams.values().filter_map(Weak::upgrade) {
        sender.send_modify(|version| *version += 1);
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
