//! A reader's wait for news (`NativeStreamReader::pause`): a write to the stream here, a
//! notification or the shared check finding something, a poll coming due, or the reader
//! released or the store closed.

use std::sync::{Arc, PoisonError};

use super::ReaderInner;
use crate::backend::Waiter;
use crate::wakeups::Parked;

impl ReaderInner {
    /// `pause_then`'s wait without the tokio runtime, where nothing needs it: a JS client
    /// whose shared check runs has no poll to time, and its writes, notifications and
    /// checks all arrive on the JS thread. The reader joins the check and parks on its
    /// stream's hub; the next change there (or its release, or the store closing) calls
    /// `onWake` with `token`. A write here then wakes it in the same step, instead of
    /// waking a runtime thread that wakes the JS thread (that hop, and spawning the wait,
    /// cost a reader in the writer's process more than the rest of its chunk). False:
    /// nothing was done, use `pause()`.
    pub(super) fn park(self: &Arc<Self>, token: u32) -> bool {
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
        let parked = Parked::new(move || {
            drop(waiting);
            shared.waker.wake(token);
        });
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
