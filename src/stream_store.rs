//! `PostgresStreamStore`'s native half: create, append, status, stop/complete/fail,
//! cleanup, and the readers of `readFrom` (in `reader/`).

use std::sync::Arc;

use napi::bindgen_prelude::{FnArgs, Function, PromiseRaw, Reference};
use napi::Env;
use napi_derive::napi;

use crate::backend::{missing, NativeBackend, Param};
use crate::clock::now_ms;
use crate::error::Error;
use crate::options::{after_seq, check_id, check_text, StreamSettings, StreamStoreOptions};
use crate::reader::{NativeStreamReader, WriterKnows};
use crate::sql::StreamSql;
use crate::stream_shared::StreamShared;
use crate::waker::Waker;
use crate::wakeups;

#[napi(object)]
pub struct DurableStreamStatus {
    /// "active", "done", "stopped" or "error".
    pub state: String,
    pub error: Option<String>,
    pub total_chunks: u32,
}

/// See `NativeStreamStore::lookup`.
#[napi(object)]
pub struct AppendLookup {
    pub state: String,
    pub total_chunks: u32,
    pub at: Option<String>,
    pub before: Option<String>,
}

#[napi]
pub struct NativeStreamStore {
    shared: Arc<StreamShared>,
}

impl NativeStreamStore {
    /// For the store's methods in other files (`sent_appends.rs`).
    pub(crate) fn shared(&self) -> &StreamShared {
        &self.shared
    }
}

#[napi]
impl NativeStreamStore {
    #[napi(constructor)]
    pub fn new(
        backend: Reference<NativeBackend>,
        options: Option<StreamStoreOptions>,
    ) -> napi::Result<Self> {
        let settings = StreamSettings::new(options.unwrap_or_default())?;
        Ok(NativeStreamStore {
            shared: Arc::new(StreamShared {
                db: backend.db.clone(),
                sql: StreamSql::new(
                    &settings.chunks_table,
                    &settings.status_table,
                    settings.relaxed_appends,
                    wakeups::origin(),
                )
                .forced(settings.citus)
                .notify_batch(settings.notify_batch),
                settings,
                waker: Waker::default(),
                lone: Arc::default(),
                sent: Default::default(),
            }),
        })
    }

    /// Sets the callback that wakes this store's readers (`NativeStreamReader::pauseThen`):
    /// called on the JS thread with the tokens of the readers to wake, and `later` true
    /// when a settle on the JS thread calls it (`src/waker.rs`): its caller's own work goes
    /// first. Once per store.
    #[napi(ts_args_type = "callback: (tokens: number[], later: boolean) => void")]
    pub fn on_wake(&self, callback: Function<FnArgs<(Vec<u32>, bool)>, ()>) -> napi::Result<()> {
        self.shared.waker.set(callback)
    }

    #[napi]
    pub fn create<'env>(&self, env: &'env Env, id: String) -> napi::Result<PromiseRaw<'env, ()>> {
        check_id("stream id", &id)?;
        let s = &self.shared;
        let params = vec![
            Param::Text(id.clone()),
            Param::BigInt(now_ms() + s.settings.ttl_ms),
        ];
        let key = s.settings.wake_key.clone();
        s.db.run(env, &s.sql.create, params, move |rows| {
            if rows.is_empty() {
                return Err(Error::StreamExists(id));
            }
            // What this process knew of an earlier stream of that id no longer holds.
            wakeups::created(&key, &id);
            Ok(())
        })
    }

    /// Resolves the chunk's seq: 1 for the first chunk, gapless after that. With `at`,
    /// the chunk is stored only as seq `at` (the stream must have `at - 1` chunks), else
    /// the call rejects with STREAM_NOT_ACTIVE; with `withinMs`, the call's deadline is
    /// that much from now (at most `queryTimeoutMs`); `alone`: never combined with other
    /// calls (and so never queued behind them). `index.cjs` builds exactly-once
    /// appends on these two (see `appendAt` there).
    #[napi]
    pub fn append<'env>(
        &self,
        env: &'env Env,
        id: String,
        chunk: String,
        at: Option<u32>,
        within_ms: Option<f64>,
        alone: Option<bool>,
    ) -> napi::Result<PromiseRaw<'env, u32>> {
        check_id("stream id", &id)?;
        check_text("chunk", &chunk)?;
        let s = &self.shared;
        let at = at.map(|at| at.min(i32::MAX as u32) as i32);
        let data: Arc<str> = Arc::from(chunk.as_str());
        let params = vec![
            Param::Text(id.clone()),
            Param::Text(chunk),
            Param::BigInt(now_ms() + s.settings.ttl_ms),
            Param::OptInt(at),
        ];
        let within = within_ms
            .filter(|ms| ms.is_finite())
            .map(|ms| std::time::Duration::from_millis(ms.max(1.0) as u64));
        let shared = s.clone();
        // A JS client's append made alone may announce its chunk itself (the Rust pool
        // decides in its append lane: `backend/pool/combine/`).
        let (statement, in_flight) = match &s.sql.append_notifying {
            Some(notifying) if alone != Some(true) && s.db.is_js() => {
                let (pick, in_flight) = s.lone.start();
                let inside = pick.is_some_and(|pick| pick.inside);
                (
                    if inside { notifying } else { &s.sql.append },
                    Some(in_flight),
                )
            }
            _ if alone == Some(true) => (&s.sql.append_alone, None),
            _ => (&s.sql.append, None),
        };
        s.db.run_within(env, statement, params, within, move |rows| {
            let (seq, notified) = match rows.first() {
                None => return Err(Error::StreamNotActive(id)),
                Some(row) => (
                    row.int(0).ok_or_else(|| missing(&shared.sql.append, 0))?,
                    row.int(1).is_some(),
                ),
            };
            if let Some(in_flight) = &in_flight {
                in_flight.stored();
            }
            let key = &shared.settings.wake_key;
            let batch = shared.settings.notify_batch;
            shared
                .db
                .appended(key, &id, seq as u32, data, notified, batch);
            Ok(seq as u32)
        })
    }

    #[napi]
    pub fn get_status<'env>(
        &self,
        env: &'env Env,
        id: String,
    ) -> napi::Result<PromiseRaw<'env, Option<DurableStreamStatus>>> {
        check_id("stream id", &id)?;
        let s = &self.shared;
        let statement = s.sql.status.clone();
        s.db.run(
            env,
            &s.sql.status,
            vec![Param::Text(id)],
            move |mut rows| {
                let Some(row) = rows.first_mut() else {
                    return Ok(None);
                };
                Ok(Some(DurableStreamStatus {
                    state: row.take_text(0).ok_or_else(|| missing(&statement, 0))?,
                    error: row.take_text(1),
                    total_chunks: row.int(2).ok_or_else(|| missing(&statement, 2))? as u32,
                }))
            },
        )
    }

    /// What settles an append whose outcome was unknown: the stream's state and chunk
    /// count, and the texts of its chunks at `seq` and `seq - 1`; `null` when the stream
    /// does not exist.
    #[napi]
    pub fn lookup<'env>(
        &self,
        env: &'env Env,
        id: String,
        seq: u32,
        within_ms: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, Option<AppendLookup>>> {
        check_id("stream id", &id)?;
        let s = &self.shared;
        let statement = s.sql.lookup.clone();
        let within = within_ms
            .filter(|ms| ms.is_finite())
            .map(|ms| std::time::Duration::from_millis(ms.max(1.0) as u64));
        let params = vec![Param::Text(id), Param::Int(seq.min(i32::MAX as u32) as i32)];
        s.db.run_within(env, &s.sql.lookup, params, within, move |mut rows| {
            let Some(row) = rows.first_mut() else {
                return Ok(None);
            };
            Ok(Some(AppendLookup {
                state: row.take_text(0).ok_or_else(|| missing(&statement, 0))?,
                total_chunks: row.int(1).ok_or_else(|| missing(&statement, 1))? as u32,
                at: row.take_text(2),
                before: row.take_text(3),
            }))
        })
    }

    #[napi]
    pub fn stop<'env>(&self, env: &'env Env, id: String) -> napi::Result<PromiseRaw<'env, ()>> {
        self.finish(env, id, "stopped", None)
    }

    #[napi]
    pub fn complete<'env>(&self, env: &'env Env, id: String) -> napi::Result<PromiseRaw<'env, ()>> {
        self.finish(env, id, "done", None)
    }

    #[napi]
    pub fn fail<'env>(
        &self,
        env: &'env Env,
        id: String,
        error: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        check_text("error", &error)?;
        self.finish(env, id, "error", Some(error))
    }

    /// Removes finished streams whose ttl has passed and active streams whose writer has
    /// been silent past `ttlMs + staleAfterMs`, with all their chunks, in one statement.
    /// Resolves how many streams it removed.
    #[napi]
    pub fn cleanup<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, u32>> {
        let s = &self.shared;
        let now = now_ms();
        let params = vec![
            Param::BigInt(now),
            Param::BigInt(now - s.settings.stale_after_ms),
        ];
        s.db.run(env, &s.sql.cleanup, params, |rows| {
            Ok(rows.first().and_then(|r| r.int(0)).unwrap_or(0) as u32)
        })
    }

    /// A reader of the chunks after `afterSeq`, for `readFrom`. `writing`: this store
    /// writes the stream (and has not seen it finish), `written`: the most chunks it
    /// stored; with a read replica they decide whether it may be read there.
    #[napi]
    pub fn reader(
        &self,
        id: String,
        after: f64,
        writing: Option<bool>,
        written: Option<u32>,
    ) -> napi::Result<NativeStreamReader> {
        check_id("stream id", &id)?;
        if self.shared.db.is_closed() {
            return Err(Error::Closed.into());
        }
        let writer = WriterKnows {
            writing: writing.unwrap_or(false),
            written: i64::from(written.unwrap_or(0)),
        };
        Ok(NativeStreamReader::new(
            self.shared.clone(),
            id,
            after_seq(after)?,
            writer,
        ))
    }

    /// What `stopSignal(id)` waits with: a reader past every chunk, woken only when the
    /// stream finishes (here, through NOTIFY, or the shared check); its `nextPage()`
    /// resolves `null` once the stream is not active.
    #[napi]
    pub fn stop_watcher(&self, id: String) -> napi::Result<NativeStreamReader> {
        check_id("stream id", &id)?;
        if self.shared.db.is_closed() {
            return Err(Error::Closed.into());
        }
        let key = crate::sql::finish_key(&self.shared.settings.wake_key);
        Ok(NativeStreamReader::with_key(
            self.shared.clone(),
            id,
            i32::MAX,
            key,
            None,
        ))
    }

    /// Releases the store's connection (a shared pool closes with its last store) and ends
    /// every reader that is waiting for chunks.
    /// Resolves once a pool no other store uses has closed its connections.
    #[napi]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        crate::backend::close(env, &self.shared.db)
    }

    /// The statement of a reader's page, for a JS client's reader to read what is
    /// already stored in JS (`lib/replay.cjs`): parameters stream id, after, until, and
    /// the most bytes of a chunk whose text comes with it.
    #[napi(getter)]
    pub fn page_statement(&self) -> PageStatement {
        PageStatement {
            text: self.shared.sql.read_page.text.to_string(),
            rows: crate::sql::PAGE_ROWS as u32,
            small_bytes: crate::sql::SMALL_CHUNK_BYTES as u32,
        }
    }

    /// `retryReadsForMs`, for `readFrom` in `index.cjs`.
    #[napi(getter)]
    pub fn retry_reads_for_ms(&self) -> f64 {
        self.shared.settings.retry_reads_for_ms as f64
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.db.is_closed()
    }
}

impl NativeStreamStore {
    /// stop / complete / fail: only an active stream changes, and its ttl starts now.
    fn finish<'env>(
        &self,
        env: &'env Env,
        id: String,
        state: &str,
        error: Option<String>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        check_id("stream id", &id)?;
        let s = &self.shared;
        let params = vec![
            Param::Text(id.clone()),
            Param::Text(state.into()),
            Param::OptText(error),
            Param::BigInt(now_ms() + s.settings.ttl_ms),
            Param::Text(wakeups::origin().to_string()),
        ];
        let shared = s.clone();
        let finished_state = state.to_string();
        // Other processes hear of it from the statement's own NOTIFY (on Citus, from one
        // sent afterwards: `announce` is 1), which carries the
        // final count; no row back: the stream was not active, nothing changed.
        let statement = s.sql.finish.clone();
        s.db.run(env, &s.sql.finish, params, move |rows| {
            if let Some(row) = rows.first() {
                let total = row.int(0).ok_or_else(|| missing(&statement, 0))?;
                let key = &shared.settings.wake_key;
                if row.int(1) == Some(1) {
                    shared.db.announce_finish(key, &id, &finished_state, total);
                }
                shared.db.finished(key, &id, total);
            }
            Ok(())
        })
    }
}

/// A reader's page statement, as `NativeStreamStore::page_statement` gives it.
#[napi(object)]
pub struct PageStatement {
    pub text: String,
    /// The most chunks a page asks for.
    pub rows: u32,
    /// Chunks up to this many bytes come with their text.
    pub small_bytes: u32,
}
