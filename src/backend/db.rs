//! `Db`: a store's connection to the database, the one abstraction the stores talk to.
//! `Db::run(statement, params, decode)` runs one statement on the Rust pool (`pool/`) or
//! through the caller's JS `query` (`js/`), whichever the store was given.

use std::sync::{Arc, Mutex, RwLock};

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::Env;
use tokio::sync::watch;

use super::check::{Waiter, Waiting};
use super::js::JsQuery;
use super::js_read;
use super::notify::Written;
use super::pool::{combine, Closing, SharedPool};
use super::route::{routed, Route};
use super::rows::{Param, Row};
use super::stats::{read, BackendStats, Reads};
use crate::error::{Error, Result};
use crate::sql::Statement;
use crate::tail::Source;
use crate::telemetry;
use crate::wakeups;

#[cfg(not(feature = "noop"))]
use napi::bindgen_prelude::spawn;
#[cfg(feature = "noop")]
use tokio::spawn;

/// What a `Db` runs its statements on: the store's backend, one of two kinds.
#[derive(Clone)]
pub(super) enum Backend {
    Pool(Arc<SharedPool>),
    Js(Arc<JsQuery>),
}

/// A statement started ahead of time (`Db::start`).
pub enum Started {
    /// Running on the pool; its rows arrive here.
    Pool(tokio::sync::oneshot::Receiver<Result<Vec<Row>>>),
    /// Running through the JS client (everything on the JS thread).
    Js(Arc<Mutex<Ahead>>),
}

/// A statement started through a JS client, and who waits for its rows.
pub enum Ahead {
    Running,
    Done(Result<Vec<Row>>),
    Awaited(Box<dyn FnOnce(Result<Vec<Row>>) + Send>),
}

fn ahead(slot: &Mutex<Ahead>) -> std::sync::MutexGuard<'_, Ahead> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A store's connection to the database: a pool it shares or a JS query function.
pub struct Db {
    backend: RwLock<Option<Backend>>,
    closed: watch::Sender<bool>,
    /// Which database what this store reads and writes comes from (`tail.rs`).
    source: Source,
    /// Reads that may go to a replica, by where they were served (`read.rs`).
    pub(super) reads: Arc<Reads>,
}

impl Db {
    pub(super) fn new(backend: Backend) -> Arc<Self> {
        let source = match &backend {
            Backend::Pool(pool) => pool.source(),
            Backend::Js(js) => js.source(),
        };
        Arc::new(Db {
            backend: RwLock::new(Some(backend)),
            closed: watch::Sender::new(false),
            source,
            reads: Arc::default(),
        })
    }

    pub fn source(&self) -> Source {
        self.source
    }

    pub(super) fn backend(&self) -> Result<Backend> {
        self.backend
            .read()
            .map_err(|_| Error::Closed)?
            .clone()
            .ok_or(Error::Closed)
    }

    /// Whether statements go through a JS client.
    pub fn is_js(&self) -> bool {
        matches!(self.backend(), Ok(Backend::Js(_)))
    }

    /// Whether `statement` goes out as its own text through a JS client (not in its Citus
    /// form): what lets a store send it from JS itself (`sent_appends.rs`).
    pub fn js_sends_as_is(&self, statement: &Statement) -> bool {
        match self.backend() {
            Ok(Backend::Js(js)) => statement.citus.is_none() || js.citus.known() != Some(true),
            _ => false,
        }
    }

    /// Whether `statement` goes out as its own text through a JS client from now on: as
    /// `js_sends_as_is`, and no answer on Citus can still change that.
    pub fn js_sends_as_is_for_good(&self, statement: &Statement) -> bool {
        match self.backend() {
            Ok(Backend::Js(js)) => statement.citus.is_none() || js.citus.known() == Some(false),
            _ => false,
        }
    }

    /// Runs one statement and resolves the returned promise with what `decode` makes of
    /// its rows. With the Rust pool the statement runs on napi's tokio runtime; with a JS
    /// client it runs right here on the JS thread (the client's `query` is JS anyway),
    /// so no thread is woken and no hop is paid.
    pub fn run<'env, T, F>(
        &self,
        env: &'env Env,
        statement: &Statement,
        params: Vec<Param>,
        decode: F,
    ) -> napi::Result<PromiseRaw<'env, T>>
    where
        T: ToNapiValue + Send + 'static,
        F: FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
    {
        self.run_within(env, statement, params, None, decode)
    }

    /// `run`, by a deadline `within` from now instead of `queryTimeoutMs` (at most that).
    pub fn run_within<'env, T, F>(
        &self,
        env: &'env Env,
        statement: &Statement,
        params: Vec<Param>,
        within: Option<std::time::Duration>,
        decode: F,
    ) -> napi::Result<PromiseRaw<'env, T>>
    where
        T: ToNapiValue + Send + 'static,
        F: FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
    {
        // The store call this statement serves (`telemetry.rs`; 0 when nobody listens).
        let call = vec![telemetry::current_call()];
        match self.backend()? {
            // A statement with a combined form may go out together with other calls of it
            // (never on Citus, nor before the pool knows it is not Citus).
            Backend::Pool(pool)
                if statement.combined.is_some() && pool.citus.known() == Some(false) =>
            {
                let deadline = pool.conns().deadline_within(within);
                let rows = combine::run(pool, statement, params, deadline);
                env.spawn_future(telemetry::with_calls(call, async move {
                    Ok(decode(rows.await?)?)
                }))
            }
            Backend::Pool(pool) => {
                // The deadline runs from the call, not from when the runtime gets to it.
                let deadline = pool.conns().deadline_within(within);
                let statement = statement.clone();
                env.spawn_future(telemetry::with_calls(call, async move {
                    let citus = pool.on_citus(deadline).await;
                    let statement = match &statement.citus {
                        Some(form) if citus => (**form).clone(),
                        _ => statement,
                    };
                    let rows = pool.query(&statement, &params, deadline).await?;
                    Ok(decode(rows)?)
                }))
            }
            Backend::Js(js) => match &statement.citus {
                Some(form) if js.citus.known() == Some(true) => {
                    js.run(env, form, params, within, decode)
                }
                _ => js.run(env, statement, params, within, decode),
            },
        }
    }

    /// Starts running a statement now, for its rows to be taken later with `run_started`
    /// (a reader's next page, asked for while the current one is read): with the Rust
    /// pool on a connection of its own, with a JS client right away through its `query`.
    pub fn start(&self, env: &Env, statement: &Statement, params: Vec<Param>) -> Option<Started> {
        self.start_routed(env, statement, params, None)
    }

    /// `start`, for a read that may go to the replica (`read.rs`); `route` `None`: a read
    /// for the primary alone, counted as such.
    pub(super) fn start_routed(
        &self,
        env: &Env,
        statement: &Statement,
        params: Vec<Param>,
        route: Option<Option<Route>>,
    ) -> Option<Started> {
        match self.backend().ok()? {
            Backend::Pool(pool) => {
                let statement = statement.clone();
                let deadline = pool.conns().deadline();
                let (rows, started) = tokio::sync::oneshot::channel();
                let call = vec![telemetry::current_call()];
                let reads = self.reads.clone();
                spawn(telemetry::with_calls(call, async move {
                    let got = match route {
                        Some(route) => {
                            routed(&pool, &reads, &statement, &params, route, deadline).await
                        }
                        None => pool.query(&statement, &params, deadline).await,
                    };
                    let _ = rows.send(got);
                }));
                Some(Started::Pool(started))
            }
            Backend::Js(js) => {
                let slot = Arc::new(Mutex::new(Ahead::Running));
                let done = slot.clone();
                let done = move |rows| {
                    let mut slot = ahead(&done);
                    match std::mem::replace(&mut *slot, Ahead::Running) {
                        Ahead::Awaited(deliver) => {
                            drop(slot);
                            deliver(rows);
                        }
                        _ => *slot = Ahead::Done(rows),
                    }
                };
                match route {
                    Some(route) => {
                        js_read::start(&js, env, statement, params, route, self.reads.clone(), done)
                    }
                    None => js.start(env, statement, params, done),
                }
                .ok()?;
                Some(Started::Js(slot))
            }
        }
    }

    /// `run`, for a statement `start` started.
    pub fn run_started<'env, T, F>(
        &self,
        env: &'env Env,
        started: Started,
        decode: F,
    ) -> napi::Result<PromiseRaw<'env, T>>
    where
        T: ToNapiValue + Send + 'static,
        F: FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
    {
        self.backend()?;
        match started {
            Started::Pool(rows) => env.spawn_future(async move {
                let rows = rows.await.map_err(|_| Error::Closed)??;
                Ok(decode(rows)?)
            }),
            Started::Js(slot) => {
                type Resolve<T> = Box<dyn FnOnce(Env) -> napi::Result<T>>;
                let (deferred, promise) = env.create_deferred::<T, Resolve<T>>()?;
                let deliver = move |rows: Result<Vec<Row>>| match rows.and_then(decode) {
                    Ok(value) => deferred.resolve(Box::new(move |_| Ok(value))),
                    Err(err) => deferred.reject(err.into()),
                };
                let mut state = ahead(&slot);
                match std::mem::replace(&mut *state, Ahead::Running) {
                    Ahead::Done(rows) => {
                        drop(state);
                        deliver(rows);
                    }
                    _ => *state = Ahead::Awaited(Box::new(deliver)),
                }
                use napi::bindgen_prelude::JsValue;
                Ok(PromiseRaw::new(env.raw(), promise.raw()))
            }
        }
    }

    /// Chunk `seq` of the stream committed: this process's readers at `seq - 1` take it
    /// at once, and other processes' through the NOTIFY that carries it (`notified`: the
    /// append's own statement sent it). Call it from where `decode` runs.
    ///
    /// While the delivery lag is measured, the chunk is stamped with the time now (its
    /// commit was just acknowledged), for the readers here and, in the NOTIFY, elsewhere.
    /// `batch`: the store's `notifyBatchMs` (the pool's announcements of chunks written
    /// back to back go out once per batch; a JS client's hub is told by JS).
    pub fn appended(
        &self,
        key: &str,
        id: &str,
        seq: u32,
        data: Arc<str>,
        notified: bool,
        batch: std::time::Duration,
    ) {
        let at = if crate::clock::lag_measured() {
            crate::clock::now_ms_f64()
        } else {
            0.0
        };
        let committed = crate::tail::Committed { at, heard: false };
        crate::written_here::mark(key, id);
        wakeups::appended(key, id, self.source, seq, &data, committed);
        if notified {
            return;
        }
        match self.backend() {
            Ok(Backend::Pool(pool)) => pool.publish(Written::chunk(key, id, seq, data, at), batch),
            Ok(Backend::Js(js)) => js.publish(Written::chunk(key, id, seq, data, at)),
            _ => {}
        }
    }

    /// The stream finished, and its statement did not announce it (on Citus): announce it
    /// from here, as appends are.
    pub fn announce_finish(&self, key: &str, id: &str, state: &str, total: i64) {
        let written = Written::finished(key, id, state, total);
        match self.backend() {
            Ok(Backend::Pool(pool)) => pool.publish(written, std::time::Duration::ZERO),
            Ok(Backend::Js(js)) => js.publish(written),
            _ => {}
        }
    }

    /// The stream finished with `total` chunks (its statement announced it to other
    /// processes): this process's readers and stop signals there end.
    pub fn finished(&self, key: &str, id: &str, total: i64) {
        wakeups::finished(key, id, self.source, total);
        wakeups::finished(&crate::sql::finish_key(key), id, self.source, total);
    }

    /// A reader waits for chunks past `after`. With the Rust pool it joins the pool's
    /// shared check (and LISTEN, if the store listens), which wakes it when there is
    /// something to read: the returned guard keeps it there. `None` with a JS client: the
    /// reader polls on its own. Call it from the tokio runtime.
    pub fn wait(&self, waiter: Waiter, listen: bool) -> Option<Waiting> {
        match self.backend() {
            Ok(Backend::Pool(pool)) => Some(pool.wait(waiter, listen)),
            _ => self.wait_here(waiter),
        }
    }

    /// `wait`, for a reader that waits without the tokio runtime (`reader/pause.rs`): a
    /// JS client whose shared check runs (nothing to poll, nothing to spawn); `None`
    /// otherwise.
    pub fn wait_here(&self, waiter: Waiter) -> Option<Waiting> {
        match self.backend() {
            Ok(Backend::Js(js)) if js.checking.load(std::sync::atomic::Ordering::Acquire) => {
                Some(js.checker.add(waiter))
            }
            _ => None,
        }
    }

    /// Releases the connection and ends every reader that waits on this store. When this
    /// was the last store of a pool, the returned `Closing` resolves once the pool's
    /// connections are closed.
    pub fn close(&self) -> Option<Closing> {
        let backend = self
            .backend
            .write()
            .ok()
            .and_then(|mut backend| backend.take());
        self.closed.send_replace(true);
        // Readers parked off the runtime (`reader/pause.rs`) look again, and find it closed.
        crate::wakeups::unpark_all();
        let Some(Backend::Pool(pool)) = backend else {
            return None;
        };
        // In-flight calls hold the pool too; it closes once the last of them is done.
        let closing = pool.release_store().then(|| pool.closing());
        drop(pool);
        closing
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Whether waiting readers join a shared check (the Rust pool) rather than poll.
    pub fn shares_checks(&self) -> bool {
        matches!(self.backend(), Ok(Backend::Pool(_)))
    }

    /// What `store.stats()` reports (a closed store: nothing open).
    pub fn stats(&self) -> BackendStats {
        let mut stats = self.backend_stats();
        stats.primary_reads = read(&self.reads.primary);
        if self.has_replica() {
            stats.replica_reads = Some(read(&self.reads.replica));
            stats.replica_fallbacks = Some(read(&self.reads.fell_back));
        }
        stats
    }

    fn backend_stats(&self) -> BackendStats {
        match self.backend() {
            Ok(Backend::Pool(pool)) => pool.stats(),
            // Readers in the client's shared check (those polling on their own are not).
            Ok(Backend::Js(js)) => BackendStats {
                readers_waiting: js.checker.len() as u32,
                ..BackendStats::js_client()
            },
            _ => BackendStats::js_client(),
        }
    }

    /// Resolves once `close()` has been called.
    pub async fn until_closed(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }
}

/// Closes a store's connection now; the promise resolves once a pool no other store uses
/// has closed its connections (in-flight calls end within their deadline; a few seconds
/// at most).
pub fn close<'env>(env: &'env Env, db: &Db) -> napi::Result<PromiseRaw<'env, ()>> {
    let closing = db.close();
    env.spawn_future(async move {
        if let Some(closing) = closing {
            closing.closed(std::time::Duration::from_secs(5)).await;
        }
        Ok(())
    })
}
