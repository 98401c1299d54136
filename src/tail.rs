//! What this process knows of one stream's newest chunks, so that readers at the end of
//! the stream take them from memory instead of each asking the database.
//!
//! A stream's `Tail` is fed by appends through stores of this process, by the chunks
//! other processes' NOTIFYs carry, and by the pages readers fetch at the end of the
//! stream. Every change stamps a version (the stream's wake-up counter, `wakeups.rs`), and
//! a reader remembers `since`: the version at which its last query started. Anything
//! stamped after `since` is news to it:
//!
//! - chunks right after its cursor: it takes them (`Look::Chunks`), no query;
//! - the stream finished at its cursor: it ends (`Look::Finished`), no query;
//! - a write whose text is not here (`unknown`: a wake-up without data, a gap, another
//!   database's data): it must read the database, and readers at the same cursor share
//!   one fetch (`Look::Query` for the first, `Look::Wait` for the others, who take the
//!   page from here when it lands);
//! - nothing: it is caught up (`Look::Nothing`).
//!
//! Seqs are gapless per stream, so a chunk at `cursor + 1` stamped after the reader's
//! query began was committed after that query's snapshot: it is exactly the next chunk.
//! Chunks are tagged with their `Source` (the pool or JS client that saw them, and so the
//! database), and a reader takes only its own source's: two databases with a table of
//! the same name never mix.

mod fetch;
mod replica;

use std::collections::VecDeque;
use std::sync::Arc;

/// The pool or JS client a chunk was seen through (so, its database); unique in the
/// process.
pub type Source = u64;

/// A source for a new pool. JS clients are numbered by `index.cjs`, one number per client
/// object, below 2^32; pools count from there.
pub fn new_source() -> Source {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 32);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Chunks kept per stream at the most, and their bytes: enough for every reader near
/// the end; a reader further behind reads the database.
const MOST_CHUNKS: usize = 1024;
const MOST_BYTES: usize = 1 << 20;
/// A chunk larger than this is not kept (its readers read it from the database).
pub const LARGEST_KEPT: usize = 256 << 10;
/// A reader at the end of the stream reads at most this many chunks a page, each with its
/// text up to `LARGEST_KEPT` (4 MiB at the most): the page its readers share.
pub const TAIL_ROWS: i32 = 16;

struct Known {
    seq: u32,
    data: Arc<str>,
    version: u64,
    committed: Committed,
}

/// When a chunk's commit was acknowledged, for the delivery lag: milliseconds since the
/// epoch on the clock of whoever stamped it (0: not known, as for a chunk a reader read
/// from the database), and whether it was heard through a NOTIFY (another process's
/// clock, or the database server's) rather than committed here.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Committed {
    pub at: f64,
    pub heard: bool,
}

/// A fetch in flight: it reads the chunks after `after`, and began at version `started`.
#[derive(Clone, Copy)]
struct Fetch {
    after: i32,
    started: u64,
}

#[derive(Default)]
pub struct Tail {
    source: Source,
    /// Consecutive seqs, oldest first; versions never decrease along it.
    chunks: VecDeque<Known>,
    bytes: usize,
    /// The stream's final count, once it finished, and when that was learned.
    finished: Option<(i64, u64)>,
    /// The last write (at this version) whose text is not here.
    unknown: u64,
    fetch: Option<Fetch>,
    /// A fetch found the stream at this count, having started at this version: a reader
    /// at that count knows every write announced before that version.
    checked: Option<(i64, u64)>,
    version: u64,
    /// The version of the last write (an append, a finish, a write whose text is not
    /// here, a stream made anew): what a reader of another source looks for. A page a
    /// reader fetched stamps a version too, but it is no write: were it news to readers
    /// of another source, each one's own fetch would send it to fetch again, for ever.
    written: u64,
}

/// What a reader at `after` should do next (see the module's doc).
#[derive(Debug, PartialEq)]
pub enum Look {
    /// The chunks after the cursor, in order; `end`: the stream finished with the last.
    Chunks {
        chunks: Vec<(u32, Arc<str>)>,
        end: bool,
        more: bool,
        /// Each chunk's commit time, while the delivery lag is measured (else empty).
        committed: Vec<Committed>,
    },
    Finished,
    /// Read the database; `since` is the reader's new stamp (its query starts now).
    Query {
        since: u64,
    },
    /// Another reader's fetch covers this cursor: wait for a wake-up, then look again.
    Wait,
    Nothing,
}

impl Tail {
    /// A new version, for a write.
    fn stamp(&mut self) -> u64 {
        self.version += 1;
        self.written = self.version;
        self.version
    }

    /// A new version that is no write (a fetch's page landed, or it failed): it wakes the
    /// readers waiting on that fetch, and is news to no one else.
    fn stamp_fetch(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// A write whose text is not here: every reader must look in the database.
    pub fn unknown(&mut self) -> u64 {
        self.unknown = self.stamp();
        self.unknown
    }

    /// Chunk `seq` was committed (seen through `source`).
    #[cfg(test)]
    pub fn appended(&mut self, source: Source, seq: u32, data: Arc<str>) -> u64 {
        self.appended_at(source, seq, data, Committed::default())
    }

    /// Chunk `seq` was committed (seen through `source`) at `committed`.
    pub fn appended_at(
        &mut self,
        source: Source,
        seq: u32,
        data: Arc<str>,
        committed: Committed,
    ) -> u64 {
        let version = self.stamp();
        self.push(source, seq, data, version, committed);
        version
    }

    fn push(
        &mut self,
        source: Source,
        seq: u32,
        data: Arc<str>,
        version: u64,
        committed: Committed,
    ) {
        if data.len() > LARGEST_KEPT {
            self.restart(source, i64::from(seq));
            self.unknown = version;
            return;
        }
        let last = self.chunks.back().map(|k| k.seq);
        match last {
            Some(last) if source == self.source && seq <= last && self.same(seq, &data) => {
                return; // known already
            }
            Some(last) if source == self.source && seq == last + 1 => {}
            // Another database's chunks, or not the next one (a gap, or a stream made
            // anew): start over from this one; whoever read what was here looks in the
            // database.
            _ => {
                if !self.chunks.is_empty() {
                    self.unknown = version;
                }
                self.restart(source, i64::from(seq));
            }
        }
        self.bytes += data.len();
        self.chunks.push_back(Known {
            seq,
            data,
            version,
            committed,
        });
        while self.chunks.len() > MOST_CHUNKS || self.bytes > MOST_BYTES {
            let Some(old) = self.chunks.pop_front() else {
                break;
            };
            self.bytes -= old.data.len();
        }
    }

    fn same(&self, seq: u32, data: &str) -> bool {
        let first = self.chunks.front().map_or(0, |k| k.seq);
        seq < first
            || self
                .chunks
                .get((seq - first) as usize)
                .is_some_and(|k| &*k.data == data)
    }

    /// The stream was made anew (or is gone): nothing here holds.
    pub fn created(&mut self) -> u64 {
        let version = self.unknown();
        let source = self.source;
        self.reset(source);
        self.fetch = None;
        version
    }

    /// Forgets the chunks here (and what a fetch found) to start over from chunks of
    /// `source` up to seq `upto`. A finish learned of the same source stays if it can
    /// still hold (its count reaches `upto`): a page or a chunk that arrives after the
    /// news of the finish, as a fetch begun before it or a NOTIFY overtaken by the
    /// finish's own, must not make readers wait for a poll to learn it again.
    fn restart(&mut self, source: Source, upto: i64) {
        let finished = self
            .finished
            .filter(|(total, _)| source == self.source && *total >= upto);
        self.source = source;
        self.chunks.clear();
        self.bytes = 0;
        self.finished = finished;
        self.checked = None;
    }

    /// Forgets everything known of the stream, finish included (another source's news,
    /// or a stream made anew).
    fn reset(&mut self, source: Source) {
        self.restart(source, i64::MAX);
    }

    /// The stream finished with `total` chunks (seen through `source`).
    pub fn finished(&mut self, source: Source, total: i64) -> u64 {
        let version = self.stamp();
        if source != self.source {
            if !self.chunks.is_empty() {
                self.unknown = version;
            }
            self.reset(source);
        }
        self.finished = Some((total, version));
        version
    }

    /// What a reader of `source` whose cursor is at `after`, stamped `since`, does next.
    /// `must_look`: it needs the database whatever is here (its first page, more chunks
    /// known to be there, a poll).
    /// A fetch that found the stream at the reader's cursor raises `since` to when it began;
    /// if it began after the reader's stamp, it also stands for the reader's own look at
    /// the database: `must_look` is cleared. `fresh`: the reader has not read the database
    /// yet, and its stamp is when it came (a fetch begun at that very version began after
    /// it); else its stamp is when its own last query began.
    pub fn look(
        &mut self,
        source: Source,
        after: i32,
        since: &mut u64,
        must_look: &mut bool,
        fresh: bool,
    ) -> Look {
        let mine = source == self.source;
        let stamp = *since;
        let after_stamp = |started: u64| started > stamp || (fresh && started == stamp);
        if mine {
            if let Some((count, started)) = self.checked {
                if i64::from(after) == count {
                    *since = stamp.max(started);
                    if after_stamp(started) {
                        *must_look = false;
                    }
                }
            }
        }
        let since = *since;
        if mine {
            if let Some(chunks) = self.take(after, since) {
                return chunks;
            }
            if let Some((total, version)) = self.finished {
                if version > since && total <= i64::from(after) {
                    return Look::Finished;
                }
            }
        }
        // News: a write whose text is not here; with another source's data here, any change.
        let news = if mine {
            self.unknown > since
                || self
                    .chunks
                    .back()
                    .is_some_and(|k| k.version > since && i64::from(k.seq) > i64::from(after))
                || self
                    .finished
                    .is_some_and(|(total, version)| version > since && total != i64::from(after))
        } else {
            self.written > since
        };
        if !*must_look && !news {
            return Look::Nothing;
        }
        // Readers at one cursor share the fetch in flight there. One that must read the
        // database for itself (its first page, a poll) shares it only if it began after
        // the reader's stamp, so that it sees everything the reader's own would.
        if let Some(fetch) = self.fetch {
            let covers = fetch.after <= after && after - fetch.after < TAIL_ROWS;
            if mine && covers && (!*must_look || after_stamp(fetch.started)) {
                return Look::Wait;
            }
        }
        let started = self.version;
        let empty = self.chunks.is_empty() && self.finished.is_none();
        if self.fetch.is_none() && (mine || empty) {
            self.source = source;
            self.fetch = Some(Fetch { after, started });
        }
        Look::Query { since: started }
    }

    fn take(&self, after: i32, since: u64) -> Option<Look> {
        let first = self.chunks.front()?.seq;
        let from = u32::try_from(after).ok()?.checked_add(1)?;
        if from < first {
            return None;
        }
        let start = (from - first) as usize;
        let head = self.chunks.get(start)?;
        if head.version <= since {
            return None;
        }
        let most = crate::sql::PAGE_ROWS as usize;
        let chunks: Vec<_> = self
            .chunks
            .range(start..)
            .take(most)
            .map(|k| (k.seq, k.data.clone()))
            .collect();
        let committed = if crate::clock::lag_measured() {
            self.chunks
                .range(start..start + chunks.len())
                .map(|k| k.committed)
                .collect()
        } else {
            Vec::new()
        };
        let last = chunks.last().map_or(0, |(seq, _)| *seq);
        let more = self.chunks.len() > start + chunks.len();
        let end = !more
            && self
                .finished
                .is_some_and(|(total, _)| total == i64::from(last));
        Some(Look::Chunks {
            chunks,
            end,
            more,
            committed,
        })
    }

    pub fn version(&self) -> u64 {
        self.version
    }
}

#[cfg(test)]
mod tests;
