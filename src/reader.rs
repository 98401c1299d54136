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
            let params = vec![
                Param::Text(self.id.clone()),
                Param::Int(cursor.after),
                Param::Int(PAGE_ROWS),
                Param::BigInt(PAGE_BYTES),
            ];
            let mut rows = self.shared.db.query(sql, params).await?;
            let Some(first) = rows.first_mut() else {
                // No status row: the stream does not exist (or was cleaned up).
                cursor.finished = true;
                return Ok(None);
            };
            let active = first.take_text(0).ok_or_else(|| missing(sql, 0))? == "active";
            let mut page = Vec::with_capacity(rows.len());
            let mut bytes = 0usize;
            for mut row in rows {
                let Some(seq) = row.int(1) else { continue };
                let data = row.take_text(2).ok_or_else(|| missing(sql, 2))?;
                bytes += data.len();
                page.push(StreamChunk {
                    seq: seq as u32,
                    data,
                });
            }
            // The state and the chunks come from one snapshot, so a finished stream whose
            // page was not cut short has nothing more to give.
            let cut_short = page.len() as i32 >= PAGE_ROWS || bytes as i64 >= PAGE_BYTES;
            if !active && !cut_short {
                cursor.finished = true;
            }
            if let Some(last) = page.last() {
                cursor.after = last.seq as i32;
                return Ok(Some(page));
            }
            if cursor.finished {
                return Ok(None);
            }
            self.pause().await;
        }
    }

    /// Ends the reader: a pending or later `nextPage()` resolves `null`.
    #[napi]
    pub fn release(&self) {
        self.released.send_replace(true);
    }
}
