//! The database behind a store. One name for each thing:
//!
//! - a *backend* is what runs a store's statements, of one of two kinds (`db::Backend`):
//!   the Rust *pool* (`pool/`, when the store was given a connection string) or a *JS
//!   client*'s own `query` function (`js/`, when it was given a `pg.Pool`, a wrapped
//!   postgres.js or Neon client, or any `{ query }` object);
//! - `NativeBackend` (below) is the napi class `index.cjs` makes a backend with and hands
//!   to a store's constructor;
//! - `Db` (`db.rs`) is a store's handle on its backend, the one abstraction the stores
//!   talk to: `Db::run(statement, params, decode)` runs a statement and `decode` turns
//!   its rows into the method's result. The stores never know which kind runs it.
//!
//! Shared by both kinds: `rows.rs` (parameters, rows, cells), `check.rs` (the shared
//! check of waiting readers), `notify.rs` (the NOTIFY payload format), `stats.rs`
//! (`stats()`), `options.rs` (pool options).

mod check;
mod citus;
mod citus_state;
mod db;
mod js;
mod js_read;
mod notify;
pub mod notify_choice;
mod options;
mod pool;
mod read;
mod route;
mod rows;
mod stats;

pub use check::{Waiter, Waiting};
pub use db::{close, Db, Started};
pub use js::{read_rows as read_js_outcome, MakeAdapter};
pub use options::PoolOptions;
pub use route::Route;
#[cfg(test)]
pub use rows::Cell;
pub use rows::{missing, Param, Row};
pub use stats::BackendStats;

use std::sync::Arc;

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;

use crate::sql::Statement;
use crate::wakeups;
use db::Backend;

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
            db: Db::new(Backend::Pool(pool)),
        })
    }

    /// Runs one statement whose rows do not matter (the schema's DDL, for `migrate`).
    #[napi]
    pub fn execute<'env>(&self, env: &'env Env, sql: String) -> napi::Result<PromiseRaw<'env, ()>> {
        self.db
            .run(env, &Statement::plain(sql), Vec::new(), |_| Ok(()))
    }

    /// Runs one look-up of the `aibind-postgres` command (`lib/inspect.cjs`): a statement
    /// whose rows carry one text column, its parameters all text. Resolves the first
    /// row's value, `null` when there is no row.
    #[napi]
    pub fn query_text<'env>(
        &self,
        env: &'env Env,
        sql: String,
        params: Vec<String>,
    ) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let params = params.into_iter().map(Param::Text).collect();
        self.db.run(env, &Statement::one_text(sql), params, |rows| {
            Ok(rows.first().and_then(|row| row.text(0)).map(str::to_owned))
        })
    }

    /// Finds out whether the database has Citus (`backend/citus.rs`); `lib/backend.cjs`
    /// asks once per JS client (the pool asks on its own).
    #[napi]
    pub fn detect_citus<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, bool>> {
        let db = self.db.clone();
        let detect = crate::sql::citus::detect();
        self.db.run(env, &detect, Vec::new(), move |rows| {
            Ok(db.citus_found(&rows))
        })
    }

    /// Takes what another backend of the same JS client found out (`detectCitus`).
    #[napi]
    pub fn set_citus(&self, citus: bool) {
        self.db.set_citus(citus);
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

    /// A backend over a JS client (and `makeReplicaAdapter`, its read replica's client,
    /// if given): `makeAdapter(settle, queryTimeoutMs)` returns the
    /// function `(sql, params, ticket, columns) => Promise` that runs a query and settles
    /// it through `settle(ticket, outcome, columns?)` (see `index.cjs`), giving up after
    /// `queryTimeoutMs`. Held by a reference that never keeps the process alive.
    #[napi(
        factory,
        ts_args_type = "makeAdapter: (settle: (ticket: number, outcome: unknown) => unknown, queryTimeoutMs: number) => (sql: string, params: unknown[], ticket: number, columns: string, withinMs: number | null) => Promise<unknown>, options?: PoolOptions, clientNumber?: number, makeReplicaAdapter?: (settle: (ticket: number, outcome: unknown) => unknown, queryTimeoutMs: number) => (sql: string, params: unknown[], ticket: number, columns: string, withinMs: number | null) => Promise<unknown>"
    )]
    pub fn from_query(
        env: &Env,
        make_adapter: MakeAdapter,
        options: Option<PoolOptions>,
        client_number: Option<u32>,
        make_replica_adapter: Option<MakeAdapter>,
    ) -> napi::Result<Self> {
        let settings = options.unwrap_or_default().settings()?;
        let source = client_number.map_or_else(crate::tail::new_source, u64::from);
        let timeout = settings.query_timeout_ms as f64;
        let mut query = js::JsQuery::new(env, make_adapter, timeout, source)?;
        // A read replica's client (`replica`): reads it may serve go there first.
        if let Some(make_replica) = make_replica_adapter {
            let replica = js::JsQuery::new(env, make_replica, timeout, source)?;
            query.replica = Some(Arc::new(replica));
        }
        Ok(NativeBackend {
            db: Db::new(Backend::Js(Arc::new(query))),
        })
    }

    /// JS clients: the NOTIFY payloads announcing this backend's writes since the last
    /// call, for `lib/client-hub.cjs` to send through the client.
    #[napi]
    pub fn take_notifications(&self) -> Vec<String> {
        match self.db.backend() {
            Ok(Backend::Js(js)) => js.take_notifications(),
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
        if let Ok(Backend::Js(js)) = self.db.backend() {
            js.checking
                .store(true, std::sync::atomic::Ordering::Release);
            js.heard.store(heard, std::sync::atomic::Ordering::Release);
        }
    }

    /// JS clients: whether a waiting reader relies on the LISTEN connection (a stop
    /// signal's watcher, or a reader of a stream not written here: `written_here.rs`).
    #[napi(getter)]
    pub fn needs_listener(&self) -> bool {
        match self.db.backend() {
            Ok(Backend::Js(js)) => js.checker.any_listens(),
            _ => false,
        }
    }

    /// JS clients: milliseconds until the next shared check is due, `null` while no
    /// reader waits.
    #[napi(getter)]
    pub fn check_in_ms(&self) -> Option<f64> {
        match self.db.backend() {
            Ok(Backend::Js(js)) => js
                .checker
                .tick(js.heard.load(std::sync::atomic::Ordering::Acquire))
                .map(|tick| tick.as_millis() as f64),
            _ => None,
        }
    }

    /// JS clients: one shared check of the waiting readers (one statement per status
    /// table), which wakes those with something to read. Resolves when it is done.
    #[napi]
    pub fn check_waiting<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let Ok(Backend::Js(js)) = self.db.backend() else {
            return PromiseRaw::resolve(env, ());
        };
        let mut checks = js.checker.checks();
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
