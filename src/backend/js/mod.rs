//! The JS backend: the caller's own `query(sql, params)`, called on the JS thread.
//!
//! `lib/driver.cjs` wraps the client's `query` in an adapter that settles every call
//! through `settle`, a native function made once per backend; the protocol (the
//! adapter's arguments, the outcomes, pages by column) is written down once, at the top
//! of `lib/driver.cjs`. `settle` runs the statement's `decode` on the rows and returns
//! the result, so the adapter's own promise is the method's promise: no thread in
//! between, and nothing allocated per call on the JS side beyond the client's own work.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use napi::bindgen_prelude::{
    FnArgs, FromNapiValue, Function, FunctionRef, JsValue, PromiseRaw, ToNapiValue, Unknown,
};
use napi::{sys, Env};
use serde_json::Value;

mod decode;

use decode::client_failure;
pub use decode::read_rows;

use super::check::Checker;
use super::citus_state::CitusState;
use super::notify::{payloads, Written};
use super::rows::{Param, Row};
use crate::error::{Error, Result};
use crate::sql::{Kind, Statement};
use crate::tail::Source;

/// Most writes queued for `lib/client-hub.cjs` to announce.
const MOST_QUEUED: usize = 100_000;

type Args = FnArgs<(String, Vec<Value>, u32, String, Option<f64>)>;

/// `(settle, queryTimeoutMs) => (sql, params, ticket, columns, withinMs) => Promise<unknown>`,
/// as `adapt` in `lib/driver.cjs` makes it.
pub type MakeAdapter<'f> = Function<
    'f,
    FnArgs<(Function<'f, SettleArgs, Raw>, f64)>,
    Function<'f, Args, Unknown<'static>>,
>;

type SettleArgs = FnArgs<(u32, Unknown<'static>)>;

/// What to do with the outcome of one query: turn its rows into the method's JS result.
type OnSettle = Box<dyn FnOnce(&Env, Unknown) -> napi::Result<sys::napi_value> + Send>;

#[derive(Default)]
struct Pending {
    next: u32,
    queries: HashMap<u32, OnSettle>,
}

/// A JS value made by Rust code and handed back as it is.
pub struct Raw(sys::napi_value);

// SAFETY (both impls): the value is passed through untouched; napi-rs calls these with the
// env the value belongs to, on the JS thread, while the value is live.
impl ToNapiValue for Raw {
    unsafe fn to_napi_value(_: sys::napi_env, value: Self) -> napi::Result<sys::napi_value> {
        Ok(value.0)
    }
}

impl FromNapiValue for Raw {
    unsafe fn from_napi_value(_: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        Ok(Raw(value))
    }
}

pub struct JsQuery {
    query: FunctionRef<Args, Unknown<'static>>,
    pending: Arc<Mutex<Pending>>,
    /// The client object, as `lib/client-hub.cjs` numbers it (`tail.rs`).
    source: Source,
    /// Writes to announce, until `lib/client-hub.cjs` takes them to send (`takeNotifications`).
    outbox: Mutex<Vec<Written>>,
    /// Readers waiting, for the shared check `lib/client-hub.cjs` runs (`checkWaiting`).
    pub checker: Checker,
    /// Whether `lib/client-hub.cjs` runs the shared check, and whether its LISTEN connection is
    /// known to deliver.
    pub checking: AtomicBool,
    pub heard: AtomicBool,
    /// Whether the database has Citus (`backend/citus.rs`), from `detectCitus`.
    pub citus: CitusState,
    /// The replica's client (the `replica` option), and until when it rests after a
    /// failure (`backend/js_read.rs`).
    pub replica: Option<Arc<JsQuery>>,
    pub resting_until: Mutex<Option<std::time::Instant>>,
    pub query_timeout: std::time::Duration,
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

impl JsQuery {
    pub fn new(
        env: &Env,
        make_adapter: MakeAdapter,
        query_timeout_ms: f64,
        source: Source,
    ) -> napi::Result<Self> {
        let pending = Arc::new(Mutex::new(Pending::default()));
        let queries = pending.clone();
        let settle =
            env.create_function_from_closure::<SettleArgs, Raw, _>("settle", move |ctx| {
                let ticket: u32 = ctx.get(0)?;
                let outcome: Unknown = ctx.get(1)?;
                let on_settle = lock(&queries)
                    .queries
                    .remove(&ticket)
                    .ok_or_else(|| napi::Error::from(Error::Closed))?;
                crate::waker::settling(ctx.env, || on_settle(ctx.env, outcome)).map(Raw)
            })?;
        let adapter = make_adapter.call(FnArgs::from((settle, query_timeout_ms)))?;
        Ok(JsQuery {
            query: adapter.create_ref()?,
            pending,
            source,
            outbox: Mutex::default(),
            checker: Checker::default(),
            checking: AtomicBool::new(false),
            heard: AtomicBool::new(false),
            citus: CitusState::default(),
            replica: None,
            resting_until: Mutex::new(None),
            query_timeout: std::time::Duration::from_millis(query_timeout_ms as u64),
        })
    }

    pub fn source(&self) -> Source {
        self.source
    }

    /// Queues a write for `lib/client-hub.cjs` to announce (at most `MOST_QUEUED`; beyond that,
    /// readers elsewhere find it through their shared check or poll).
    pub fn publish(&self, written: Written) {
        let mut outbox = self.outbox.lock().unwrap_or_else(PoisonError::into_inner);
        if outbox.len() < MOST_QUEUED {
            outbox.push(written);
        }
    }

    /// The payloads announcing what was written since the last call.
    pub fn take_notifications(&self) -> Vec<String> {
        let written =
            std::mem::take(&mut *self.outbox.lock().unwrap_or_else(PoisonError::into_inner));
        if written.is_empty() {
            return Vec::new();
        }
        payloads(written)
    }

    /// Runs a statement now and hands its rows (or its error) to `done`, on the JS thread,
    /// instead of to a promise of its own.
    pub fn start(
        &self,
        env: &Env,
        statement: &Statement,
        params: Vec<Param>,
        done: impl FnOnce(Result<Vec<Row>>) + Send + 'static,
    ) -> napi::Result<()> {
        let columns = statement.clone();
        let on_settle: OnSettle = Box::new(move |env, outcome| {
            done(read_rows(env, &columns, outcome));
            // SAFETY: `env` is the live env of the JS thread this settle call runs on.
            unsafe { <()>::to_napi_value(env.raw(), ()) }
        });
        self.call(env, statement, params, None, on_settle)
            .map(|_| ())
    }

    pub fn run<'env, T, F>(
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
        let columns = statement.clone();
        let on_settle: OnSettle = Box::new(move |env, outcome| {
            let value = decode(read_rows(env, &columns, outcome)?)?;
            // SAFETY: `env` is the live env of the JS thread this settle call runs on.
            unsafe { T::to_napi_value(env.raw(), value) }
        });
        let returned = self.call(env, statement, params, within, on_settle)?;
        // SAFETY: a live value of this env; the adapter always returns a promise.
        unsafe { PromiseRaw::<T>::from_napi_value(env.raw(), returned) }
    }

    /// Runs a statement within `within` and hands its rows to `done` on the JS thread,
    /// whose value (a promise, for one) the adapter's promise, returned, resolves with.
    pub fn call_rows(
        &self,
        env: &Env,
        statement: &Statement,
        params: Vec<Param>,
        within: Option<std::time::Duration>,
        done: impl FnOnce(&Env, Result<Vec<Row>>) -> napi::Result<sys::napi_value> + Send + 'static,
    ) -> napi::Result<sys::napi_value> {
        let columns = statement.clone();
        let on_settle: OnSettle =
            Box::new(move |env, outcome| done(env, read_rows(env, &columns, outcome)));
        self.call(env, statement, params, within, on_settle)
    }

    /// Calls the adapter with a ticket for `on_settle`; returns the adapter's promise.
    fn call(
        &self,
        env: &Env,
        statement: &Statement,
        params: Vec<Param>,
        within: Option<std::time::Duration>,
        on_settle: OnSettle,
    ) -> napi::Result<sys::napi_value> {
        let ticket = {
            let mut pending = lock(&self.pending);
            pending.next = pending.next.wrapping_add(1);
            let ticket = pending.next;
            pending.queries.insert(ticket, on_settle);
            ticket
        };
        let params = params.into_iter().map(to_json).collect();
        let called = self.query.borrow_back(env).and_then(|f| {
            // The columns wanted, by name: `name:i` (an integer) or `name:t` (a text) each.
            let spec: Vec<_> = statement
                .columns
                .iter()
                .map(|c| format!("{}:{}", c.name, if c.kind == Kind::Int { 'i' } else { 't' }))
                .collect();
            f.call(FnArgs::from((
                statement.text.to_string(),
                params,
                ticket,
                spec.join(","),
                within.map(|w| w.as_millis() as f64),
            )))
        });
        match called {
            Ok(returned) => Ok(returned.raw()),
            Err(err) => {
                lock(&self.pending).queries.remove(&ticket);
                Err(client_failure(err).into())
            }
        }
    }
}

fn to_json(param: Param) -> Value {
    match param {
        Param::Text(s) | Param::OptText(Some(s)) => Value::String(s),
        Param::OptText(None) => Value::Null,
        Param::Int(v) => v.into(),
        Param::OptInt(v) => v.map_or(Value::Null, Value::from),
        Param::OptIntArray(v) => v
            .into_iter()
            .map(|v| v.map_or(Value::Null, Value::from))
            .collect(),
        Param::BigInt(v) => v.into(),
        Param::TextArray(v) => v.into(),
        Param::OptTextArray(v) => v.into(),
        Param::IntArray(v) => v.into(),
        Param::BigIntArray(v) => v.into(),
    }
}
