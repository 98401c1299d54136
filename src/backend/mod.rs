//! The one database abstraction the stores talk to: `Db::run(statement, params, finish)`.
//!
//! Behind it is either a Rust connection pool (`pool.rs`, when the store was given a
//! connection string) or the caller's own JS `query` function (`js.rs`, when it was given
//! a `pg.Pool`, a wrapped postgres.js or Neon client, or any `{ query }` object). The
//! stores never know which.

mod budget;
pub mod combine;
mod conninfo;
mod js;
mod notify;
mod pool;
mod pooler;
mod stats;
mod sweep;
mod tls;

pub use stats::BackendStats;

pub use sweep::{Waiter, Waiting};

use std::sync::{Arc, Mutex, RwLock};

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::Env;
use napi_derive::napi;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::sql::{Kind, Statement};
use crate::tail::Source;
use crate::wakeups;
use notify::Written;

pub use js::MakeAdapter;

#[cfg(not(feature = "noop"))]
use napi::bindgen_prelude::spawn;
#[cfg(feature = "noop")]
use tokio::spawn;

/// A statement parameter.
#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i32),
    OptInt(Option<i32>),
    BigInt(i64),
    TextArray(Vec<String>),
    OptTextArray(Vec<Option<String>>),
    IntArray(Vec<i32>),
    OptIntArray(Vec<Option<i32>>),
    BigIntArray(Vec<i64>),
}

impl Param {
    /// About how many bytes the value takes.
    pub fn size(&self) -> usize {
        match self {
            Param::Text(s) | Param::OptText(Some(s)) => s.len(),
            _ => 8,
        }
    }

    /// Parameter sets of one statement as the parameters of its combined form: one array
    /// per parameter.
    pub fn columns(sets: Vec<Vec<Param>>) -> Vec<Param> {
        let width = sets.first().map_or(0, Vec::len);
        let mut columns: Vec<Param> = match sets.first() {
            None => Vec::new(),
            Some(first) => first
                .iter()
                .map(|p| match p {
                    Param::Text(_) => Param::TextArray(Vec::with_capacity(sets.len())),
                    Param::OptText(_) => Param::OptTextArray(Vec::with_capacity(sets.len())),
                    Param::Int(_) => Param::IntArray(Vec::with_capacity(sets.len())),
                    Param::OptInt(_) => Param::OptIntArray(Vec::with_capacity(sets.len())),
                    _ => Param::BigIntArray(Vec::with_capacity(sets.len())),
                })
                .collect(),
        };
        for set in sets {
            for (column, param) in columns.iter_mut().zip(set).take(width) {
                match (column, param) {
                    (Param::TextArray(c), Param::Text(v)) => c.push(v),
                    (Param::OptTextArray(c), Param::OptText(v)) => c.push(v),
                    (Param::IntArray(c), Param::Int(v)) => c.push(v),
                    (Param::OptIntArray(c), Param::OptInt(v)) => c.push(v),
                    (Param::BigIntArray(c), Param::BigInt(v)) => c.push(v),
                    _ => {}
                }
            }
        }
        columns
    }
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    /// Text of a joined column (see `Statement::joined`): bytes `start..end` of the text
    /// all the rows' values of that column share.
    Slice(Arc<str>, u32, u32),
}

/// One result row, its cells in the order of the statement's columns.
#[derive(Debug)]
pub struct Row(pub Vec<Cell>);

impl Row {
    pub fn int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Cell::Int(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn take_text(&mut self, i: usize) -> Option<String> {
        match self.0.get_mut(i).map(|c| std::mem::replace(c, Cell::Null)) {
            Some(Cell::Text(s)) => Some(s),
            Some(Cell::Slice(text, start, end)) => Some(text[start as usize..end as usize].into()),
            _ => None,
        }
    }

    pub fn text(&self, i: usize) -> Option<&str> {
        match self.0.get(i) {
            Some(Cell::Text(s)) => Some(s),
            Some(Cell::Slice(text, start, end)) => Some(&text[*start as usize..*end as usize]),
            _ => None,
        }
    }
}

/// The cells of a joined text column: `texts` in row order (`None` for NULL) as slices of
/// one shared string.
pub fn joined_cells<'a>(texts: impl Iterator<Item = Option<&'a str>> + Clone) -> Vec<Cell> {
    let mut all = String::with_capacity(texts.clone().flatten().map(str::len).sum());
    let spans: Vec<_> = texts
        .map(|text| {
            text.map(|text| {
                let start = all.len() as u32;
                all.push_str(text);
                (start, all.len() as u32)
            })
        })
        .collect();
    let all: Arc<str> = all.into();
    spans
        .into_iter()
        .map(|span| {
            span.map_or(Cell::Null, |(start, end)| {
                Cell::Slice(all.clone(), start, end)
            })
        })
        .collect()
}

/// A required cell was NULL: only a hand-written client can cause that.
pub fn missing(statement: &Statement, column: usize) -> Error {
    let name = statement.columns.get(column).map_or("?", |c| c.name);
    let kind = match statement.columns.get(column).map(|c| c.kind) {
        Some(Kind::Int) => "an integer",
        _ => "a string",
    };
    Error::MalformedResult(format!(
        "the client's query result has no value for column \"{name}\" (expected {kind})"
    ))
}

#[derive(Clone)]
enum Conn {
    Pool(Arc<pool::SharedPool>),
    Js(Arc<js::JsQuery>),
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
    conn: RwLock<Option<Conn>>,
    closed: watch::Sender<bool>,
    /// Which database what this store reads and writes comes from (`tail.rs`).
    source: Source,
}

impl Db {
    fn new(conn: Conn) -> Arc<Self> {
        let source = match &conn {
            Conn::Pool(pool) => pool.source(),
            Conn::Js(js) => js.source(),
        };
        Arc::new(Db {
            conn: RwLock::new(Some(conn)),
            closed: watch::Sender::new(false),
            source,
        })
    }

    pub fn source(&self) -> Source {
        self.source
    }

    fn conn(&self) -> Result<Conn> {
        self.conn
            .read()
            .map_err(|_| Error::Closed)?
            .clone()
            .ok_or(Error::Closed)
    }

    /// Runs one statement and resolves the returned promise with what `finish` makes of
    /// its rows. With the Rust pool the statement runs on napi's tokio runtime; with a JS
    /// client it runs right here on the JS thread (the client's `query` is JS anyway),
    /// so no thread is woken and no hop is paid.
    pub fn run<'env, T, F>(
        &self,
        env: &'env Env,
        statement: &Statement,
        params: Vec<Param>,
        finish: F,
    ) -> napi::Result<PromiseRaw<'env, T>>
    where
        T: ToNapiValue + Send + 'static,
        F: FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
    {
        self.run_within(env, statement, params, None, finish)
    }

    /// `run`, by a deadline `within` from now instead of `queryTimeoutMs` (at most that).
    pub fn run_within<'env, T, F>(
        &self,
        env: &'env Env,
        statement: &Statement,
        params: Vec<Param>,
        within: Option<std::time::Duration>,
        finish: F,
    ) -> napi::Result<PromiseRaw<'env, T>>
    where
        T: ToNapiValue + Send + 'static,
        F: FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
    {
        match self.conn()? {
            // A statement with a combined form may go out together with other calls of it.
            Conn::Pool(pool) if statement.combined.is_some() => {
                let deadline = pool.conns().deadline_within(within);
                let rows = combine::run(pool, statement, params, deadline);
                env.spawn_future(async move { Ok(finish(rows.await?)?) })
            }
            Conn::Pool(pool) => {
                // The deadline runs from the call, not from when the runtime gets to it.
                let deadline = pool.conns().deadline_within(within);
                let statement = statement.clone();
                env.spawn_future(async move {
                    let rows = pool.query(&statement, &params, deadline).await?;
                    Ok(finish(rows)?)
                })
            }
            Conn::Js(js) => js.run(env, statement, params, within, finish),
        }
    }

    /// Starts running a statement now, for its rows to be taken later with `run_started`
    /// (a reader's next page, asked for while the current one is read): with the Rust
    /// pool on a connection of its own, with a JS client right away through its `query`.
    pub fn start(&self, env: &Env, statement: &Statement, params: Vec<Param>) -> Option<Started> {
        match self.conn().ok()? {
            Conn::Pool(pool) => {
                let statement = statement.clone();
                let deadline = pool.conns().deadline();
                let (rows, started) = tokio::sync::oneshot::channel();
                spawn(async move {
                    let _ = rows.send(pool.query(&statement, &params, deadline).await);
                });
                Some(Started::Pool(started))
            }
            Conn::Js(js) => {
                let slot = Arc::new(Mutex::new(Ahead::Running));
                let done = slot.clone();
                js.start(env, statement, params, move |rows| {
                    let mut slot = ahead(&done);
                    match std::mem::replace(&mut *slot, Ahead::Running) {
                        Ahead::Awaited(deliver) => {
                            drop(slot);
                            deliver(rows);
                        }
                        _ => *slot = Ahead::Done(rows),
                    }
                })
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
        finish: F,
    ) -> napi::Result<PromiseRaw<'env, T>>
    where
        T: ToNapiValue + Send + 'static,
        F: FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
    {
        self.conn()?;
        match started {
            Started::Pool(rows) => env.spawn_future(async move {
                let rows = rows.await.map_err(|_| Error::Closed)??;
                Ok(finish(rows)?)
            }),
            Started::Js(slot) => {
                type Resolve<T> = Box<dyn FnOnce(Env) -> napi::Result<T>>;
                let (deferred, promise) = env.create_deferred::<T, Resolve<T>>()?;
                let deliver = move |rows: Result<Vec<Row>>| match rows.and_then(finish) {
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
    /// append's own statement sent it). Call it from where `finish` runs.
    pub fn appended(&self, key: &str, id: &str, seq: u32, data: Arc<str>, notified: bool) {
        wakeups::appended(key, id, self.source, seq, &data);
        if notified {
            return;
        }
        match self.conn() {
            Ok(Conn::Pool(pool)) => pool.publish(Written::chunk(key, id, seq, data)),
            Ok(Conn::Js(js)) => js.publish(Written::chunk(key, id, seq, data)),
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
        match self.conn() {
            Ok(Conn::Pool(pool)) => Some(pool.wait(waiter, listen)),
            Ok(Conn::Js(js)) if js.checking.load(std::sync::atomic::Ordering::Acquire) => {
                Some(js.sweeper.add_unchecked(waiter))
            }
            _ => None,
        }
    }

    /// Releases the connection and ends every reader that waits on this store. When this
    /// was the last store of a pool, the returned `Closing` resolves once the pool's
    /// connections are closed.
    pub fn close(&self) -> Option<pool::Closing> {
        let conn = self.conn.write().ok().and_then(|mut conn| conn.take());
        self.closed.send_replace(true);
        let Some(Conn::Pool(pool)) = conn else {
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
        matches!(self.conn(), Ok(Conn::Pool(_)))
    }

    /// What `store.stats()` reports (a closed store: nothing open).
    pub fn stats(&self) -> BackendStats {
        match self.conn() {
            Ok(Conn::Pool(pool)) => pool.stats(),
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

/// Pool settings for a store built from a connection string.
#[napi(object)]
#[derive(Default)]
pub struct PoolOptions {
    /// Most connections the pool opens, 1 to 1000 (default 10). It opens them on demand
    /// (one more only when a call has waited for a busy one) and closes idle ones. Stores
    /// created with the same connection string and pool options in one process share one
    /// pool.
    pub pool_size: Option<f64>,
    /// How long opening a connection may take, in ms (default 10000).
    pub connect_timeout_ms: Option<f64>,
    /// How long one statement may take, waiting for a free connection included, in ms
    /// (default 30000); the server is told the same limit (`statement_timeout`, set per
    /// connection, or per statement behind a transaction pooler).
    pub query_timeout_ms: Option<f64>,
    /// How long a pooled connection may stay idle before it is closed, in ms (default
    /// 10000, as pg.Pool); 0 keeps idle connections open.
    pub idle_timeout_ms: Option<f64>,
    /// What sits between this process and PostgreSQL: "auto" (default: found out per
    /// connection), "transaction" (PgBouncer or Supavisor in transaction mode: unnamed
    /// statements, nothing that outlives a transaction), "session" or "none".
    pub pooler: Option<String>,
    /// A connection string used only for LISTEN (a direct host, when the main one goes
    /// through a pooler that cannot deliver notifications). Default: the main one.
    pub listen_url: Option<String>,
}

impl PoolOptions {
    fn settings(self) -> Result<pool::PoolSettings> {
        let size = match self.pool_size {
            None => 10,
            Some(n) if n.fract() == 0.0 && (1.0..=1000.0).contains(&n) => n as usize,
            Some(n) => {
                return Err(Error::InvalidOption(format!(
                    "option \"poolSize\" must be a whole number from 1 to 1000, got {n}"
                )))
            }
        };
        let idle_timeout_ms = match self.idle_timeout_ms {
            Some(0.0) => 0,
            other => positive_ms("idleTimeoutMs", other, 10_000)?,
        };
        Ok(pool::PoolSettings {
            size,
            connect_timeout_ms: positive_ms("connectTimeoutMs", self.connect_timeout_ms, 10_000)?,
            query_timeout_ms: positive_ms("queryTimeoutMs", self.query_timeout_ms, 30_000)?,
            idle_timeout_ms,
            pooler: pooler::Pooler::parse(self.pooler.as_deref())?,
            listen_url: self.listen_url,
        })
    }
}

/// A time limit option: a whole number of milliseconds from 1 to a day.
pub fn positive_ms(option: &str, value: Option<f64>, default: u64) -> Result<u64> {
    match value {
        None => Ok(default),
        Some(v) if v.fract() == 0.0 && (1.0..=86_400_000.0).contains(&v) => Ok(v as u64),
        Some(v) => Err(Error::InvalidOption(format!(
            "option \"{option}\" must be a whole number of milliseconds from 1 to 86400000, got {v}"
        ))),
    }
}

/// The database connection of one store, made by `index.cjs` and handed to the store's
/// constructor.
#[napi]
pub struct NativeBackend {
    pub(crate) db: Arc<Db>,
}

#[napi]
impl NativeBackend {
    /// A backend over this process's Rust pool for `url` (shared with every other store
    /// built from the same connection string and pool size). No connection is opened
    /// until the first query.
    #[napi(factory)]
    pub fn connect(url: String, options: Option<PoolOptions>) -> napi::Result<Self> {
        let pool = pool::shared(&url, options.unwrap_or_default().settings()?)?;
        Ok(NativeBackend {
            db: Db::new(Conn::Pool(pool)),
        })
    }

    /// Runs one statement whose rows do not matter (the schema's DDL, for `migrate`).
    #[napi]
    pub fn execute<'env>(&self, env: &'env Env, sql: String) -> napi::Result<PromiseRaw<'env, ()>> {
        self.db
            .run(env, &Statement::plain(sql), Vec::new(), |_| Ok(()))
    }

    /// The pool, the listener and the readers now (see `BackendStats`).
    #[napi]
    pub fn stats(&self) -> BackendStats {
        self.db.stats()
    }

    /// Lets go of the connection; resolves once a pool no other store uses is closed.
    #[napi]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        close(env, &self.db)
    }

    /// A backend over a JS client: `makeAdapter(settle, queryTimeoutMs)` returns the
    /// function `(sql, params, ticket, columns) => Promise` that runs a query and settles
    /// it through `settle(ticket, outcome, columns?)` (see `index.cjs`), giving up after
    /// `queryTimeoutMs`. Held by a reference that never keeps the process alive.
    #[napi(
        factory,
        ts_args_type = "makeAdapter: (settle: (ticket: number, outcome: unknown, columns?: unknown[]) => unknown, queryTimeoutMs: number) => (sql: string, params: unknown[], ticket: number, columns: string | null, withinMs: number | null) => Promise<unknown>, options?: PoolOptions, clientNumber?: number"
    )]
    pub fn from_query(
        env: &Env,
        make_adapter: MakeAdapter,
        options: Option<PoolOptions>,
        client_number: Option<u32>,
    ) -> napi::Result<Self> {
        let settings = options.unwrap_or_default().settings()?;
        let source = client_number.map_or_else(crate::tail::new_source, u64::from);
        Ok(NativeBackend {
            db: Db::new(Conn::Js(Arc::new(js::JsQuery::new(
                env,
                make_adapter,
                settings.query_timeout_ms as f64,
                source,
            )?))),
        })
    }

    /// JS clients: the NOTIFY payloads announcing this backend's writes since the last
    /// call, for `lib/client-hub.cjs` to send through the client.
    #[napi]
    pub fn take_notifications(&self) -> Vec<String> {
        match self.db.conn() {
            Ok(Conn::Js(js)) => js.take_notifications(),
            _ => Vec::new(),
        }
    }

    /// JS clients: a notification heard on `index.cjs`'s LISTEN connection. Chunks it
    /// carries go to this process's readers; returns the probe number when it is one of
    /// this process's probes coming back.
    #[napi]
    pub fn deliver(&self, payload: String) -> Option<u32> {
        match notify::deliver(&payload, self.db.source()) {
            notify::Heard::Probe(n) => Some(n as u32),
            notify::Heard::Writes => None,
        }
    }

    /// The payload of probe number `n`, which a listener sends itself to learn that its
    /// connection delivers.
    #[napi]
    pub fn probe_payload(&self, n: u32) -> String {
        notify::probe_payload(u64::from(n))
    }

    /// Every reader in the process looks in the database again (a listener (re)started:
    /// writes may have gone unheard).
    #[napi]
    pub fn wake_all(&self) {
        wakeups::wake_all();
    }

    /// JS clients: `index.cjs` runs the shared check of waiting readers
    /// (`checkWaiting`), and whether its LISTEN connection has proved it delivers. Until
    /// the first call, each waiting reader polls on its own.
    #[napi]
    pub fn share_checks(&self, heard: bool) {
        if let Ok(Conn::Js(js)) = self.db.conn() {
            js.checking
                .store(true, std::sync::atomic::Ordering::Release);
            js.heard.store(heard, std::sync::atomic::Ordering::Release);
        }
    }

    /// JS clients: milliseconds until the next shared check is due, `null` while no
    /// reader waits.
    #[napi(getter)]
    pub fn check_in_ms(&self) -> Option<f64> {
        match self.db.conn() {
            Ok(Conn::Js(js)) => js
                .sweeper
                .tick(js.heard.load(std::sync::atomic::Ordering::Acquire))
                .map(|tick| tick.as_millis() as f64),
            _ => None,
        }
    }

    /// JS clients: one shared check of the waiting readers (one statement per status
    /// table), which wakes those with something to read. Resolves when it is done.
    #[napi]
    pub fn check_waiting<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let Ok(Conn::Js(js)) = self.db.conn() else {
            return PromiseRaw::resolve(env, ());
        };
        let mut checks = js.sweeper.checks();
        let Some(last) = checks.pop() else {
            return PromiseRaw::resolve(env, ());
        };
        for check in checks {
            let (statement, params) = (check.statement.clone(), check.params.clone());
            js.start(env, &statement, params, move |rows| check.wake(rows))?;
        }
        let (statement, params) = (last.statement.clone(), last.params.clone());
        let rows = self.db.run(env, &statement, params, move |rows| {
            last.wake(Ok(rows));
            Ok(())
        });
        rows
    }
}
