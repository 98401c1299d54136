//! A reader's wait for news (`NativeStreamReader::pause`): a write to the stream here, a
//! notification or the shared check finding something, a poll coming due, or the reader
//! released or the store closed.

use super::ReaderInner;
use crate::backend::Waiter;

impl ReaderInner {
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
