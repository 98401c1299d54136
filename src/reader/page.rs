//! A reader's cursor and the pages it makes, without napi types: what a page of rows
//! (`sql.read_page`) or the tail's chunks do to the cursor, and the page text with the
//! UTF-16 offset where each chunk ends. `mod.rs` turns a `Page` into the `StreamPage` JS
//! gets.

use std::sync::Arc;

use crate::backend::{missing, Row};
use crate::error::Result;
use crate::sql::{Statement, PAGE_ROWS, SMALL_CHUNK_BYTES};
use crate::tail::{Committed, LARGEST_KEPT, TAIL_ROWS};

/// One page of chunks: their seqs, their texts joined, and the UTF-16 offset in `text`
/// where each ends.
#[derive(Debug, Default, PartialEq)]
pub struct Page {
    pub seqs: Vec<u32>,
    pub text: String,
    pub ends: Vec<u32>,
    /// Where the last chunk ends, in UTF-16 units.
    end: u32,
}

impl Page {
    fn with_capacity(chunks: usize, bytes: usize) -> Self {
        Page {
            seqs: Vec::with_capacity(chunks),
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(chunks),
            end: 0,
        }
    }

    fn push(&mut self, seq: u32, data: &str) {
        self.end += if data.is_ascii() {
            data.len()
        } else {
            data.encode_utf16().count()
        } as u32;
        self.text.push_str(data);
        self.seqs.push(seq);
        self.ends.push(self.end);
    }
}

/// What a page of rows did (`Cursor::take_page`).
#[derive(Debug)]
pub struct Taken<'r> {
    /// The page; `None`: the reader is done (the stream is missing, or finished and read).
    pub page: Option<Page>,
    /// When the rows were a registered fetch's (`fetching`) and reached the cursor
    /// whole: the chunks with their texts, the stream's count and whether it is active,
    /// for the tail (`Hub::fetched`).
    pub landed: Option<Landed<'r>>,
}

/// A fetch's chunks (seq and text), the stream's count and whether it is active.
pub type Landed<'r> = (Vec<(u32, &'r str)>, i64, bool);

/// The stream's state and count from a page's status row (the row without a seq, its
/// data "<state> <total_chunks>"); `None`: the stream is missing, or the row is malformed.
pub fn status(rows: &[Row]) -> Option<(&str, i64)> {
    let status = rows.iter().find(|row| row.int(0).is_none())?;
    let (state, total) = status.text(1)?.split_once(' ')?;
    Some((state, total.parse().ok()?))
}

#[derive(Debug)]
pub struct Cursor {
    /// The last seq handed out (or stepped over).
    pub after: i32,
    /// Nothing more will come.
    pub finished: bool,
    /// More chunks are there already: the next look need not wait.
    pub more_now: bool,
    /// The next chunk is a large one: the next page is that chunk alone.
    pub large_next: bool,
    /// The stream's chunk count, as of the last page.
    pub total: i64,
    /// The version of the stream's hub when this reader's last query began: what the
    /// tail learned after that is news to it (`tail.rs`).
    pub since: u64,
    /// The next look reads the database whatever the tail says (the first one, or a
    /// poll came due).
    pub must_look: bool,
    /// Another reader's fetch covers this cursor: `pause()` waits for it even though
    /// more chunks are there.
    pub waiting: bool,
    /// The reader has not read the database yet (`Tail::look`).
    pub fresh: bool,
    /// The last page said the stream has fewer chunks than the cursor: one more page
    /// saying so (not a lagging snapshot, then) ends the reader with `STREAM_WENT_BACK`.
    pub went_back: bool,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            after: 0,
            finished: false,
            more_now: false,
            large_next: false,
            total: 0,
            since: 0,
            must_look: true,
            waiting: false,
            fresh: true,
            went_back: false,
        }
    }
}

impl Cursor {
    /// The next page's seq range ends here, and holds the text of chunks up to this size.
    pub fn next_range(&self) -> (i32, i64) {
        if self.large_next {
            (self.after.saturating_add(1), i64::MAX)
        } else if !self.must_look && i64::from(self.after) >= self.total {
            // At the end as last seen: what came since, texts and all (a fetch readers at
            // this cursor share, and whose chunks they then take from the tail).
            (self.after.saturating_add(TAIL_ROWS), LARGEST_KEPT as i64)
        } else {
            (self.after.saturating_add(PAGE_ROWS), SMALL_CHUNK_BYTES)
        }
    }

    /// Moves the cursor past one page's rows and returns the chunks.
    ///
    /// `sql` names the column in the error of a malformed page; `fetching`: the rows are
    /// a registered fetch's, whose chunks go to the tail if they reach the cursor whole.
    pub fn take_page<'r>(
        &mut self,
        sql: &Statement,
        rows: &'r [Row],
        fetching: bool,
    ) -> Result<Taken<'r>> {
        let cursor = self;
        // The range this page was asked for (before the page changes the cursor).
        let (until, _) = cursor.next_range();
        // The status row is the one without a seq, its data "<state> <total_chunks>"; none:
        // the stream does not exist (or was cleaned up).
        let Some(status) = rows.iter().find(|row| row.int(0).is_none()) else {
            cursor.finished = true;
            return Ok(Taken {
                page: None,
                landed: None,
            });
        };
        let (state, total) = status
            .text(1)
            .and_then(|s| s.split_once(' '))
            .and_then(|(state, total)| Some((state, total.parse::<i64>().ok()?)))
            .ok_or_else(|| missing(sql, 1))?;
        let active = state == "active";
        if total < i64::from(cursor.after) && cursor.total >= i64::from(cursor.after) {
            // The count went back below what this reader saw it reach (lost writes, or a
            // new generation of the stream): what it read past it will never come again.
            // (A reader that starts past a stream's end waits, as the original's does.) Seen twice, it is not a
            // snapshot behind this reader's (the shared check wakes it again meanwhile).
            if std::mem::replace(&mut cursor.went_back, true) {
                let read = i64::from(cursor.after);
                return Err(crate::error::Error::WentBack { total, read });
            }
            cursor.more_now = false;
            return Ok(Taken {
                page: Some(Page::default()),
                landed: None,
            });
        }
        cursor.went_back = false;
        cursor.total = total;
        cursor.must_look = false;
        cursor.fresh = false;
        let mut chunks = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(seq) = row.int(0) else { continue };
            chunks.push((seq as u32, row.text(1)));
        }
        if !chunks.is_sorted_by_key(|(seq, _)| *seq) {
            chunks.sort_unstable_by_key(|(seq, _)| *seq);
        }
        let large_page = cursor.large_next;
        cursor.large_next = false;
        let mut page = Page::with_capacity(
            chunks.len(),
            chunks.iter().flat_map(|(_, d)| d.map(str::len)).sum(),
        );
        let mut texts = Vec::with_capacity(if fetching { chunks.len() } else { 0 });
        for (seq, data) in chunks {
            let Some(data) = data else {
                // A large chunk, sent without its text: the page ends before it.
                if large_page {
                    return Err(missing(sql, 1));
                }
                cursor.large_next = true;
                break;
            };
            page.push(seq, data);
            if fetching {
                texts.push((seq, data));
            }
        }
        let from = cursor.after;
        cursor.after = match page.seqs.last() {
            Some(&last) => last as i32,
            None if cursor.large_next => cursor.after,
            // Nothing in the range although the stream has chunks past it: a gap (rows
            // deleted by hand); step over it.
            None if total > i64::from(cursor.after) => until.min(total as i32),
            None => cursor.after,
        };
        let landed = (fetching && cursor.after == from + texts.len() as i32)
            .then_some((texts, total, active));
        // State and count come from the same snapshot as the chunks, and appends only
        // succeed while the stream is active: a finished stream read up to its count has
        // nothing more to give.
        let read_all = i64::from(cursor.after) >= total;
        cursor.more_now = !read_all;
        if !active && read_all {
            cursor.finished = true;
            if page.seqs.is_empty() {
                return Ok(Taken { page: None, landed });
            }
        }
        Ok(Taken {
            page: Some(page),
            landed,
        })
    }

    /// The count below which the stream went back, for the shared check: the cursor, once
    /// this reader saw the stream reach it (0: never).
    pub fn went_back_below(&self) -> i32 {
        if self.total >= i64::from(self.after) {
            self.after
        } else {
            0
        }
    }

    /// A page from the tail: the chunks right after the cursor, no query.
    pub fn take_known(&mut self, chunks: &[(u32, Arc<str>)], end: bool, more: bool) -> Page {
        let cursor = self;
        let mut page = Page::default();
        for (seq, data) in chunks {
            page.push(*seq, data);
        }
        if let Some(&last) = page.seqs.last() {
            cursor.after = last as i32;
            cursor.total = cursor.total.max(i64::from(last));
        }
        cursor.large_next = false;
        cursor.more_now = more;
        if end {
            cursor.finished = true;
        }
        page
    }
}

/// For a page from the tail, while the delivery lag is measured: each chunk's age (ms
/// since its commit, NaN: not known) and whether its time was heard through a NOTIFY;
/// `None` unless some chunk's commit time is known.
pub fn ages(committed: &[Committed]) -> Option<(Vec<f64>, Vec<u8>)> {
    if committed.iter().all(|c| c.at <= 0.0) {
        return None;
    }
    let now = crate::clock::now_ms_f64();
    let ages = committed
        .iter()
        .map(|c| if c.at > 0.0 { now - c.at } else { f64::NAN })
        .collect();
    let heard = committed.iter().map(|c| u8::from(c.heard)).collect();
    Some((ages, heard))
}

#[cfg(test)]
mod tests;
