//! What a reader's fetch (a page read at the end of the stream) does to the tail: its
//! chunks are put in front of what is here, for the readers waiting at that cursor.

use std::sync::Arc;

use super::{Known, Source, Tail, LARGEST_KEPT, MOST_BYTES, MOST_CHUNKS};

impl Tail {
    /// A fetch that began at `started` from the cursor `after` read the chunks `chunks`
    /// (in order) and found the stream with `total` chunks, finished or not. Chunks at the
    /// end of the stream are kept for the readers there; `leader`: the fetch was the one
    /// registered (its waiters look again now).
    pub fn fetched(
        &mut self,
        source: Source,
        after: i32,
        started: u64,
        chunks: &[(u32, &str)],
        total: i64,
        active: bool,
    ) -> u64 {
        let version = self.stamp_fetch();
        if self
            .fetch
            .is_some_and(|f| f.after == after && f.started == started)
        {
            self.fetch = None;
        }
        let reached_end = match chunks.last() {
            Some((seq, _)) => i64::from(*seq) >= total,
            None => i64::from(after) >= total,
        };
        if !reached_end {
            return version;
        }
        if source == self.source || self.chunks.is_empty() {
            self.merge(source, chunks, version);
            if self.source == source {
                self.checked = Some((total, started));
                if !active {
                    if self.finished.is_none() {
                        // News of a finish, learned by this fetch.
                        self.written = version;
                    }
                    self.finished = Some((total, version));
                }
            }
        }
        version
    }

    /// Puts a page read at the end of the stream in front of what is here: the page's
    /// chunks, then the ones here that follow them without a gap (appended since).
    fn merge(&mut self, source: Source, chunks: &[(u32, &str)], version: u64) {
        let Some(&(last, _)) = chunks.last() else {
            return;
        };
        let newer: Vec<Known> = if source == self.source {
            self.chunks.drain(..).filter(|k| k.seq > last).collect()
        } else {
            Vec::new()
        };
        self.restart(source, i64::from(last));
        let skip = chunks.len().saturating_sub(MOST_CHUNKS);
        for (seq, data) in &chunks[skip..] {
            if data.len() > LARGEST_KEPT {
                self.restart(source, i64::from(last));
                continue;
            }
            self.bytes += data.len();
            self.chunks.push_back(Known {
                seq: *seq,
                data: Arc::from(*data),
                version,
                committed: Default::default(),
            });
        }
        for (next, known) in (last + 1..).zip(newer) {
            if known.seq != next || self.chunks.is_empty() {
                break;
            }
            self.bytes += known.data.len();
            self.chunks.push_back(known);
        }
        while self.chunks.len() > MOST_CHUNKS || self.bytes > MOST_BYTES {
            let Some(old) = self.chunks.pop_front() else {
                break;
            };
            self.bytes -= old.data.len();
        }
    }

    /// A registered fetch failed: its waiters look for themselves.
    pub fn fetch_failed(&mut self, after: i32, started: u64) -> u64 {
        if self
            .fetch
            .is_some_and(|f| f.after == after && f.started == started)
        {
            self.fetch = None;
            return self.unknown();
        }
        self.stamp_fetch()
    }
}
