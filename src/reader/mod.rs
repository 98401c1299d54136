//! The reader behind `readFrom`. Each `nextPage()` is one round trip: the next chunks
//! after the reader's cursor, with the stream's state and chunk count from the same
//! snapshot. It resolves `null` once the reader is done (the stream finished and read,
//! missing, the reader released or the store closed), an empty page when nothing is
//! there yet (then `pause()` waits for a write or the next poll), or the chunks.
//!
//! `index.cjs` drives it from an async generator, so `for await`, `next`/`return`/`throw`
//! and `break` behave exactly as with the original's `async *readFrom`.

use std::sync::{Arc, Mutex, PoisonError};

use napi::bindgen_prelude::{Either, Float64Array, PromiseRaw, Uint8Array, Unknown};
use napi::Env;
use napi_derive::napi;
use tokio::sync::watch;

mod page;
mod pause;
mod replica;
mod stream_page;

use crate::backend::{Param, Row, Started};
use crate::error::Result;
use crate::sql::{Statement, PAGE_ROWS, SMALL_CHUNK_BYTES};
use crate::stream_shared::StreamShared;
use crate::tail::{Committed, Look};
use crate::wakeups::{self, Fetched, Hub, Subscription};
use page::Cursor;
use replica::ReplicaUse;
pub use replica::WriterKnows;
use stream_page::empty_page;
pub use stream_page::StreamPage;

/// A reader's registered fetch (`Tail::look` gave `Query`): when its page lands, the
/// chunks at the stream's end go to the tail for the readers waiting on it; if it never
/// lands (an error, a drop), they are told to look for themselves.
struct FetchGuard {
    hub: Arc<Hub>,
    fetch: Fetched,
    done: bool,
}

impl FetchGuard {
    fn landed(&mut self, chunks: &[(u32, &str)], total: i64, active: bool) {
        self.done = true;
        self.hub.fetched(&self.fetch, chunks, total, active);
    }
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        if !self.done {
            self.hub.fetch_failed(&self.fetch);
        }
    }
}

struct ReaderInner {
    shared: Arc<StreamShared>,
    id: String,
    cursor: Mutex<Cursor>,
    released: watch::Sender<bool>,
    /// Wake-ups from writes in this process; dropped once the reader is done.
    wake: tokio::sync::Mutex<Option<Subscription>>,
    /// Its wait, while it waits off the runtime (`pause.rs`).
    parked: Mutex<Option<Arc<wakeups::Parked>>>,
    /// With the Rust pool: the page after the one in flight, already asked for (it is
    /// used if the page in flight ends where this one starts), and where it starts.
    ahead: Mutex<Option<(i32, Started)>>,
    /// The key its wake-ups come under: the status table's, or its finishes' alone.
    key: String,
    /// Where its pages may be read (`replica.rs`).
    replica: ReplicaUse,
}

#[napi]
pub struct NativeStreamReader {
    inner: Arc<ReaderInner>,
}

impl NativeStreamReader {
    pub fn new(shared: Arc<StreamShared>, id: String, after: i32, writer: WriterKnows) -> Self {
        let key = shared.settings.wake_key.clone();
        Self::with_key(shared, id, after, key, Some(writer))
    }

    /// A reader woken under `key` (see `sql::finish_key`); `writer` `None`: it never
    /// reads the replica.
    pub fn with_key(
        shared: Arc<StreamShared>,
        id: String,
        after: i32,
        key: String,
        writer: Option<WriterKnows>,
    ) -> Self {
        let subscription = wakeups::subscribe(&key, &id);
        let replica = ReplicaUse::new(writer, subscription.hub());
        NativeStreamReader {
            inner: Arc::new(ReaderInner {
                cursor: Mutex::new(Cursor {
                    after,
                    // What the tail knew before this reader came is not news to it.
                    since: subscription.version(),
                    ..Cursor::default()
                }),
                released: watch::Sender::new(false),
                wake: tokio::sync::Mutex::new(Some(subscription)),
                parked: Mutex::new(None),
                key,
                shared,
                id,
                ahead: Mutex::new(None),
                replica,
            }),
        }
    }
}

impl ReaderInner {
    fn cursor(&self) -> std::sync::MutexGuard<'_, Cursor> {
        self.cursor.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn done(&self) -> bool {
        *self.released.borrow() || self.shared.db.is_closed() || self.cursor().finished
    }

    /// Moves the cursor past one page's rows (`Cursor::take_page`); a page at the end of
    /// the stream also goes to the tail, for the readers waiting on this fetch.
    fn take_page(
        &self,
        sql: &Statement,
        rows: Vec<Row>,
        mut fetch: Option<FetchGuard>,
    ) -> Result<Option<StreamPage>> {
        let mut cursor = self.cursor();
        let taken = cursor.take_page(sql, &rows, fetch.is_some())?;
        if let (Some(fetch), Some((texts, total, active))) = (fetch.as_mut(), &taken.landed) {
            fetch.landed(texts, *total, *active);
        }
        Ok(taken.page.map(StreamPage::from))
    }

    /// A page from the tail: the chunks right after the cursor, no query.
    /// `committed`: each chunk's commit time, while the delivery lag is measured.
    fn take_known(
        &self,
        chunks: Vec<(u32, Arc<str>)>,
        end: bool,
        more: bool,
        committed: &[Committed],
    ) -> StreamPage {
        let mut page: StreamPage = self.cursor().take_known(&chunks, end, more).into();
        if let Some((ages, heard)) = page::ages(committed) {
            page.ages = Some(Float64Array::new(ages));
            page.heard = Some(Uint8Array::new(heard));
        }
        page
    }
}

#[napi]
impl NativeStreamReader {
    /// The next chunks in seq order: an empty page when there are none yet (call `pause()`
    /// before looking again), `null` once there will be no more. The page itself when it
    /// is known without a query (what this process knows of the stream: a live reader's
    /// usual page), else a promise of it.
    #[napi]
    #[allow(clippy::type_complexity)]
    pub fn next_page<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<Either<Option<StreamPage>, PromiseRaw<'env, Option<StreamPage>>>> {
        let inner = self.inner.clone();
        let sql = &inner.shared.sql.read_page;
        if inner.done() {
            inner
                .ahead
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            return Ok(Either::A(None));
        }
        let (from, until, largest, total, since, must_look, fresh) = {
            let mut cursor = inner.cursor();
            let (until, largest) = cursor.next_range();
            let must = cursor.must_look || cursor.more_now || cursor.large_next;
            cursor.waiting = false;
            (
                cursor.after,
                until,
                largest,
                cursor.total,
                cursor.since,
                must,
                cursor.fresh,
            )
        };
        let page = |from: i32, until: i32, largest: i64| {
            vec![
                Param::Text(inner.id.clone()),
                Param::Int(from),
                Param::Int(until),
                Param::BigInt(largest),
            ]
        };
        // What this process knows of the stream may spare the query (`tail.rs`). Every
        // change from here on wakes the next pause(), even while a query is in flight.
        let source = inner.shared.db.source();
        let mut fetch = None;
        if let Ok(mut wake) = inner.wake.try_lock() {
            if let Some(subscription) = wake.as_mut() {
                let (mut stamp, mut must) = (since, must_look);
                let look = subscription.look(source, from, &mut stamp, &mut must, fresh);
                {
                    let mut cursor = inner.cursor();
                    cursor.since = stamp;
                    if must_look && !must {
                        // Another reader's fetch, begun after this one's stamp, found the
                        // stream's end at this cursor: as good as its own look.
                        cursor.must_look = false;
                        cursor.more_now = false;
                        cursor.large_next = false;
                        cursor.fresh = false;
                    }
                }
                match look {
                    Look::Chunks {
                        chunks,
                        end,
                        more,
                        committed,
                    } => {
                        let page = inner.take_known(chunks, end, more, &committed);
                        return Ok(Either::A(Some(page)));
                    }
                    Look::Finished => {
                        inner.cursor().finished = true;
                        return Ok(Either::A(None));
                    }
                    Look::Nothing => return Ok(Either::A(Some(empty_page()))),
                    Look::Wait => {
                        inner.cursor().waiting = true;
                        return Ok(Either::A(Some(empty_page())));
                    }
                    Look::Query { since } => {
                        // `must_look` stays until a page lands: a failed query is retried.
                        inner.cursor().since = since;
                        fetch = Some(FetchGuard {
                            hub: subscription.hub(),
                            fetch: Fetched {
                                source,
                                after: from,
                                since,
                            },
                            done: false,
                        });
                    }
                }
            }
        }
        let db = &inner.shared.db;
        let has_replica = db.has_replica();
        let route = || inner.replica.route(has_replica, source, total);
        let started = {
            let mut ahead = inner.ahead.lock().unwrap_or_else(PoisonError::into_inner);
            let started = match ahead.take() {
                Some((starts, started)) if starts == from && largest == SMALL_CHUNK_BYTES => {
                    Some(started)
                }
                _ => None,
            };
            // The stream had chunks past this page when last looked at: ask for the next
            // page now too, so that two pages are on their way while JS reads one.
            if largest == SMALL_CHUNK_BYTES && total > i64::from(until) {
                let next = until.saturating_add(PAGE_ROWS);
                *ahead = db
                    .start_read(env, sql, page(until, next, SMALL_CHUNK_BYTES), route())
                    .map(|started| (until, started));
            }
            started
        };
        let reader = inner.clone();
        match started {
            // A page asked for earlier began before this look: it tells nothing of what
            // was announced since, so the reader keeps its stamp and waiters look again.
            Some(started) => {
                if fetch.is_some() {
                    inner.cursor().since = since;
                }
                drop(fetch);
                db.run_started(env, started, move |rows| {
                    reader.take_page(&reader.shared.sql.read_page, rows, None)
                })
                .map(Either::B)
            }
            None => db
                .read(env, sql, page(from, until, largest), route(), move |rows| {
                    reader.take_page(&reader.shared.sql.read_page, rows, fetch)
                })
                .map(Either::B),
        }
    }

    /// Waits until it is time to look for new chunks again: a write to the stream through
    /// a store of this process, or (with the Rust pool) a notification or the pool's
    /// shared check finding something to read; with a JS client, one poll interval at the
    /// most. Returns at once if the reader is released or the store closed.
    #[napi]
    pub async fn pause(&self) {
        self.inner.pause().await;
    }

    /// `pause()`, then the store's `onWake` callback gets `token` (`src/waker.rs`): one call
    /// into JS for all the readers a write woke, instead of a promise settled for each.
    /// `feed`: the wait may instead take chunks this process stores from JS right after
    /// the cursor (`appendStored` returns the tokens of the readers that took one; JS
    /// hands them the chunk), and goes on waiting.
    #[napi]
    pub fn pause_then(&self, token: u32, feed: Option<bool>) -> napi::Result<()> {
        if !self.inner.shared.waker.is_set() {
            return Err(napi::Error::from_reason("the store's onWake is not set"));
        }
        if self.inner.park(token, feed == Some(true)) {
            return Ok(());
        }
        let inner = self.inner.clone();
        let paused = async move {
            inner.pause().await;
            inner.shared.waker.wake(token);
        };
        #[cfg(not(feature = "noop"))]
        napi::bindgen_prelude::spawn(paused);
        #[cfg(feature = "noop")]
        drop(paused);
        Ok(())
    }

    /// Whether its wait needs the store's LISTEN connection (`written_here.rs`):
    /// `lib/stream-store.cjs` tells a JS client's hub so before the reader waits.
    #[napi(getter)]
    pub fn listens(&self) -> bool {
        self.inner.listens()
    }

    /// Whether more chunks are there already: the last page did not reach the stream's
    /// chunk count. `index.cjs` then asks for the next page while it yields this one.
    #[napi(getter)]
    pub fn has_more(&self) -> bool {
        self.inner.cursor().more_now && !self.inner.done()
    }

    /// The reader's first pages were read in JS (`lib/replay.cjs`) up to `after`, in a
    /// snapshot where the stream had `total` chunks. At the end of the stream, the next
    /// look goes by the tail (what it learned since this reader was made is news to
    /// it), not by the database.
    #[napi]
    pub fn replayed(&self, after: u32, total: u32) {
        let mut cursor = self.inner.cursor();
        cursor.after = after.min(i32::MAX as u32) as i32;
        cursor.total = i64::from(total);
        let at_end = after >= total;
        cursor.must_look = !at_end;
        cursor.fresh = !at_end;
        cursor.more_now = !at_end;
    }

    /// Throws the error of a page statement's `outcome` (the JS driver's) that failed when
    /// read in JS (`lib/replay.cjs`), as `nextPage()` would have; nothing if it did not
    /// fail.
    #[napi]
    pub fn page_failure(&self, env: Env, outcome: Unknown) -> napi::Result<()> {
        let statement = &self.inner.shared.sql.read_page;
        crate::backend::read_js_outcome(&env, statement, outcome)?;
        Ok(())
    }

    /// Ends the reader: a pending `pause()` returns and `nextPage()` resolves `null`.
    #[napi]
    pub fn release(&self) {
        self.inner.released.send_replace(true);
        self.inner.unpark();
        if let Ok(mut wake) = self.inner.wake.try_lock() {
            wake.take();
        }
    }
}
