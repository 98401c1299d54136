//! The reader behind `readFrom`: it hands out pages of chunks, waits while the stream is
//! active, and ends once the stream is finished and read, missing, closed or released.
//!
//! `index.js` drives it from an async generator, so `for await`, `next`/`return`/`throw`
//! and `break` behave exactly as with the original's `async *readFrom`.

use std::sync::Arc;

use napi_derive::napi;
use tokio::sync::{watch, Mutex};

use crate::backend::{missing, Param};
use crate::error::Result;
use crate::sql::{PAGE_BYTES, PAGE_ROWS};
use crate::stream_store::StreamShared;

#[napi(object)]
pub struct StreamChunk {
    pub seq: u32,
    pub data: String,
}

struct Cursor {
    after: i32,
    finished: bool,
}

#[napi]
pub struct NativeStreamReader {
    shared: Arc<StreamShared>,
    id: String,
    cursor: Mutex<Cursor>,
    released: watch::Sender<bool>,
}

impl NativeStreamReader {
    pub fn new(shared: Arc<StreamShared>, id: String, after: i32) -> Self {
        NativeStreamReader {
            shared,
            id,
            cursor: Mutex::new(Cursor {
                after,
                finished: false,
            }),
            released: watch::Sender::new(false),
        }
    }

    fn done(&self) -> bool {
        *self.released.borrow() || self.shared.db.is_closed()
    }

    /// Sleeps one poll interval, or less if the reader is released or the store closed.
    async fn pause(&self) {
        let mut released = self.released.subscribe();
        tokio::select! {
            _ = tokio::time::sleep(self.shared.settings.poll_interval) => {}
            _ = released.wait_for(|r| *r) => {}
            _ = self.shared.db.until_closed() => {}
        }
    }
}

#[napi]
impl NativeStreamReader {
    /// The next chunks in seq order, waiting for them while the stream is active; `null`
    /// once there are no more.
    #[napi]
    pub async fn next_page(&self) -> Result<Option<Vec<StreamChunk>>> {
        let mut cursor = self.cursor.lock().await;
        let sql = &self.shared.sql.read_page;
        loop {
            if cursor.finished || self.done() {
                return Ok(None);
            }
            let until = cursor.after.saturating_add(PAGE_ROWS);
            let params = vec![
                Param::Text(self.id.clone()),
                Param::Int(cursor.after),
                Param::Int(until),
                Param::BigInt(PAGE_BYTES),
            ];
            let mut rows = self.shared.db.query(sql, params).await?;
            let Some(first) = rows.first_mut() else {
                // No status row: the stream does not exist (or was cleaned up).
                cursor.finished = true;
                return Ok(None);
            };
            let active = first.take_text(0).ok_or_else(|| missing(sql, 0))? == "active";
            let total = first.int(1).ok_or_else(|| missing(sql, 1))?;
            let mut page = Vec::with_capacity(rows.len());
            for mut row in rows {
                let Some(seq) = row.int(2) else { continue };
                let data = row.take_text(3).ok_or_else(|| missing(sql, 3))?;
                page.push(StreamChunk {
                    seq: seq as u32,
                    data,
                });
            }
            cursor.after = match page.last() {
                Some(last) => last.seq as i32,
                // Nothing in the range although the stream has chunks past it: a gap (rows
                // deleted by hand); step over it.
                None if total > i64::from(cursor.after) => until.min(total as i32),
                None => cursor.after,
            };
            // State and count come from the same snapshot as the chunks, and appends only
            // succeed while the stream is active: a finished stream read up to its count
            // has nothing more to give.
            let read_all = i64::from(cursor.after) >= total;
            if !active && read_all {
                cursor.finished = true;
            }
            if !page.is_empty() {
                return Ok(Some(page));
            }
            if read_all && active {
                self.pause().await;
            }
        }
    }

    /// Ends the reader: a pending or later `nextPage()` resolves `null`.
    #[napi]
    pub fn release(&self) {
        self.released.send_replace(true);
    }
}
