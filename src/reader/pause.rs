//! A reader's wait for news (`NativeStreamReader::pause`): a write to the stream here, a
//! notification or the shared check finding something, a poll coming due, or the reader
//! released or the store closed.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::ReaderInner;
use crate::backend::{Waiter, Waiting};
use crate::tail::Source;
use crate::wakeups::Parked;

/// Most chunks a parked reader takes while it waits (`ReaderInner::park`); the next wakes
/// it, so that what JS holds for a slow consumer stays bounded.
const MOST_FED: u32 = 64;

/// A parked reader's side of feeding (`ReaderInner::park`).
struct Fed {
    reader: Weak<ReaderInner>,
    waiting: Arc<Mutex<Option<Waiting>>>,
    token: u32,
    taken: AtomicU32,
}

impl Fed {
    /// Takes chunk `seq` if it is the reader's very next one and the reader is simply at
    /// the end of what it read (nothing else to look at first).
    fn take(&self, source: Source, seq: u32) -> bool {
        let Some(reader) = self.reader.upgrade() else {
            return false;
        };
        // Only its own store's chunk: that store's JS holds the reader's token.
        if !crate::waker::feeds(Arc::as_ptr(&reader.shared) as usize)
            || reader.shared.db.source() != source
            || self.taken.load(Ordering::Relaxed) >= MOST_FED
            || reader.done()
        {
            return false;
        }
        let below = {
            let mut cursor = reader.cursor();
            let simply_waiting = !(cursor.must_look
                || cursor.more_now
                || cursor.large_next
                || cursor.waiting
                || cursor.fresh
                || cursor.went_back);
            if !simply_waiting || i64::from(cursor.after) + 1 != i64::from(seq) {
                return false;
            }
            let Ok(seq) = i32::try_from(seq) else {
                return false;
            };
            cursor.after = seq;
            cursor.total = cursor.total.max(i64::from(seq));
            // A count that goes back below what it was fed still ends it (STREAM_WENT_BACK).
            cursor.went_back_below()
        };
        if let Some(waiting) = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            waiting.advance(seq as i32, below, reader.listens());
        }
        self.taken.fetch_add(1, Ordering::Relaxed);
        crate::waker::fed(self.token);
        true
    }
}

impl ReaderInner {
    /// `pause_then`'s wait without the tokio runtime, where nothing needs it: a JS client
    /// whose shared check runs has no poll to time, and its writes, notifications and
    /// checks all arrive on the JS thread. The reader joins the check and parks on its
    /// stream's hub; the next change there (or its release, or the store closing) calls
    /// `onWake` with `token`. A write here then wakes it in the same step, instead of
    /// waking a runtime thread that wakes the JS thread (that hop, and spawning the wait,
    /// cost a reader in the writer's process more than the rest of its chunk). False:
    /// nothing was done, use `pause()`.
    ///
    /// `feed`: while parked, the reader takes a chunk this process stores from JS right
    /// after its cursor (`waker::feeding`) instead of being woken, up to `MOST_FED`
    /// chunks; JS hands it the chunk.
    pub(super) fn park(self: &Arc<Self>, token: u32, feed: bool) -> bool {
        let Ok(wake) = self.wake.try_lock() else {
            return false;
        };
        let Some(subscription) = wake.as_ref() else {
            return false;
        };
        let (after, below, waits) = {
            let cursor = self.cursor();
            let waits = !cursor.more_now || cursor.waiting;
            (cursor.after, cursor.went_back_below(), waits)
        };
        if !waits || self.done() {
            return false; // pause() returns at once, and lets a done reader's wake-ups go
        }
        let settings = &self.shared.settings;
        let Some(waiting) = self.shared.db.wait_here(Waiter {
            statement: self.shared.sql.waiting.clone(),
            status_table: self.key.clone(),
            id: self.id.clone(),
            after,
            below,
            poll_interval: settings.poll_interval,
            listen: self.listens(),
        }) else {
            return false;
        };
        let shared = self.shared.clone();
        let parked = if feed {
            // The wait's place in the shared check moves with the chunks fed; waking ends it.
            let waiting = Arc::new(Mutex::new(Some(waiting)));
            let fed = Fed {
                reader: Arc::downgrade(self),
                waiting: waiting.clone(),
                token,
                taken: AtomicU32::new(0),
            };
            Parked::feeding(
                move || {
                    drop(
                        waiting
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .take(),
                    );
                    shared.waker.wake(token);
                },
                move |source, seq| fed.take(source, seq),
            )
        } else {
            Parked::new(move || {
                drop(waiting);
                shared.waker.wake(token);
            })
        };
        *self.parked.lock().unwrap_or_else(PoisonError::into_inner) = Some(parked.clone());
        subscription.park(parked);
        true
    }

    /// Wakes the reader if it is parked (it was released, or its store closed).
    pub(super) fn unpark(&self) {
        let parked = self
            .parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(parked) = parked {
            parked.wake();
        }
    }

    /// Whether its wait needs the LISTEN connection: its store listens, and the stream is
    /// not one this process writes (`written_here.rs`), whose writes wake it themselves.
    pub(super) fn listens(&self) -> bool {
        self.shared.settings.listen && !crate::written_here::is(&self.key, &self.id)
    }

    /// See `NativeStreamReader::pause`.
    pub(super) async fn pause(&self) {
        let mut wake = self.wake.lock().await;
        let waits = {
            let cursor = self.cursor();
            !cursor.more_now || cursor.waiting
        };
        if !self.done() && waits {
            let settings = &self.shared.settings;
            // One lock of the cursor (a second in the same expression would deadlock).
            let (after, below) = {
                let cursor = self.cursor();
                (cursor.after, cursor.went_back_below())
            };
            let waiting = self.shared.db.wait(
                Waiter {
                    statement: self.shared.sql.waiting.clone(),
                    status_table: self.key.clone(),
                    id: self.id.clone(),
                    after,
                    below,
                    poll_interval: settings.poll_interval,
                    listen: settings.listen,
                },
                settings.listen,
            );
            let polled = async {
                match waiting {
                    Some(_) => std::future::pending().await,
                    None => tokio::time::sleep(settings.poll_interval).await,
                }
            };
            let mut released = self.released.subscribe();
            let written = async {
                match wake.as_mut() {
                    Some(subscription) => subscription.written().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // A poll came due: the next look reads the database.
                _ = polled => self.cursor().must_look = true,
                _ = written => {}
                _ = released.wait_for(|r| *r) => {}
                _ = self.shared.db.until_closed() => {}
            }
        }
        if self.done() {
            wake.take();
        }
    }
}
