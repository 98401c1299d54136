//! What the Rust pool did, for diagnostics channels and OpenTelemetry (`lib/telemetry.cjs`):
//! each round trip, connection checkout and connect, the LISTEN connection's connects and
//! ends. Off (one atomic load per round trip) until JS turns it on because someone listens.
//! Records gather here and go to JS in batches: the first record queued schedules one call
//! of the JS sink, which takes every record queued by then (as `waker.rs` does for readers).
//! A record never holds a parameter value, chunk text or stream id.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;

use crate::error::Error;
use crate::sql::summary;

/// 0: off; `CALLS_ONLY`: only round trips of numbered store calls (spans, when tracing
/// alone); `EVERYTHING`: every record (a subscriber, metrics).
static ENABLED: AtomicU8 = AtomicU8::new(0);
const CALLS_ONLY: u8 = 1;
const EVERYTHING: u8 = 2;

/// Most records waiting for JS: past this (JS not keeping up), new ones are dropped.
const MOST_QUEUED: usize = 10_000;

thread_local! {
    /// The store call JS is making right now on this (the JS) thread: `telemetryCall`.
    static CALL: Cell<u32> = const { Cell::new(0) };
}

tokio::task_local! {
    /// The store calls a task's statement serves (several for a combined batch).
    static CALLS: Arc<[u32]>;
}

/// One thing the pool did, as it crosses into JS.
#[napi(object)]
pub struct TelemetryRecord {
    /// "query", "checkout", "connect", "listen" (a LISTEN connection listening) or
    /// "unlisten" (it ended: `detail` says why).
    pub kind: String,
    /// `db.query.summary`, as `INSERT aibind_stream_chunks`.
    pub summary: Option<String>,
    pub operation: Option<String>,
    pub collection: Option<String>,
    /// The statement's text, with `$1`-style placeholders (never a value).
    pub text: Option<String>,
    /// Calls served by a combined statement (absent for one call's statement).
    pub batch_size: Option<u32>,
    /// Milliseconds since the epoch.
    pub start: f64,
    pub end: f64,
    pub server_address: Option<String>,
    pub server_port: Option<u32>,
    pub database: Option<String>,
    pub sql_state: Option<String>,
    /// The store's error code (`err.code`).
    pub code: Option<String>,
    /// The store calls (`telemetryCall` tokens) it served.
    pub calls: Vec<u32>,
    /// "opened" for a checkout that opened a connection; why a LISTEN connection ended
    /// ("lost", "deaf", "read-only", "not-listening").
    pub detail: Option<String>,
}

/// Where a pool's connections go: host, port and database, never a user or password.
#[derive(Debug, Default)]
pub struct Target {
    pub address: Option<String>,
    pub port: Option<u32>,
    pub database: Option<String>,
}

impl Target {
    pub fn of(config: &tokio_postgres::Config) -> Arc<Self> {
        use tokio_postgres::config::Host;
        let address = config.get_hosts().first().map(|host| match host {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        });
        Arc::new(Target {
            address,
            port: Some(config.get_ports().first().copied().unwrap_or(5432).into()),
            database: config.get_dbname().map(str::to_string),
        })
    }
}

type Sink = ThreadsafeFunction<(), (), Vec<TelemetryRecord>, Status, false, true>;

#[derive(Default)]
struct Queue {
    records: Vec<TelemetryRecord>,
    scheduled: bool,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    records: Vec::new(),
    scheduled: false,
});
static SINK: Mutex<Option<Arc<Sink>>> = Mutex::new(None);

fn queue() -> std::sync::MutexGuard<'static, Queue> {
    QUEUE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Whether anyone listens (cheap: one atomic load).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed) != 0
}

/// Whether records not of a numbered store call are wanted (checkouts, NOTIFY, ...).
fn everything() -> bool {
    ENABLED.load(Ordering::Relaxed) == EVERYTHING
}

/// Sets the JS function that takes the records, called with each batch (weak: it never
/// keeps the process alive).
#[napi]
pub fn telemetry_sink(callback: Function<Vec<TelemetryRecord>, ()>) -> napi::Result<()> {
    let sink = callback
        .build_threadsafe_function::<()>()
        .callee_handled::<false>()
        .weak::<true>()
        .build_callback(|_| {
            let mut q = queue();
            q.scheduled = false;
            Ok(std::mem::take(&mut q.records))
        })?;
    queue().scheduled = false;
    *SINK.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(sink));
    Ok(())
}

/// Turns gathering on or off (JS: while a subscriber or an OpenTelemetry SDK is there);
/// `callsOnly`: only the round trips of numbered store calls (a tracer alone wants no more).
#[napi]
pub fn telemetry_enabled(on: bool, calls_only: Option<bool>) {
    let level = match (on, calls_only) {
        (false, _) => 0,
        (true, Some(true)) => CALLS_ONLY,
        (true, _) => EVERYTHING,
    };
    ENABLED.store(level, Ordering::Relaxed);
    if !on {
        queue().records.clear();
    }
}

/// Turns the delivery lag's measure on or off (JS: while a meter provider is
/// registered): chunks entering this process's tails are stamped with their commit time,
/// and pages from them carry each chunk's age (`reader/mod.rs`).
#[napi]
pub fn telemetry_lag(on: bool) {
    crate::clock::measure_lag(on);
}

/// The store call JS makes next on this thread (0: none), for the round trips it causes.
#[napi]
pub fn telemetry_call(token: u32) {
    CALL.with(|call| call.set(token));
}

/// The store call being made (on the JS thread) or served (in a task `with_calls` runs).
pub fn current_call() -> u32 {
    if !enabled() {
        return 0;
    }
    CALLS
        .try_with(|calls| calls.first().copied().unwrap_or(0))
        .unwrap_or_else(|_| CALL.with(Cell::get))
}

/// Runs `fut` as serving `calls` (when gathering: else as it is).
pub async fn with_calls<F: Future>(calls: Vec<u32>, fut: F) -> F::Output {
    if calls.iter().all(|&c| c == 0) {
        return fut.await;
    }
    CALLS.scope(calls.into(), fut).await
}

fn calls_served() -> Vec<u32> {
    CALLS
        .try_with(|calls| calls.iter().copied().filter(|&c| c != 0).collect())
        .unwrap_or_default()
}

/// Milliseconds since the epoch, now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A record of kind `kind` that began at `start` and ends now.
pub fn record(kind: &str, start: f64, target: &Target) -> TelemetryRecord {
    TelemetryRecord {
        kind: kind.into(),
        summary: None,
        operation: None,
        collection: None,
        text: None,
        batch_size: None,
        start,
        end: now(),
        server_address: target.address.clone(),
        server_port: target.port,
        database: target.database.clone(),
        sql_state: None,
        code: None,
        calls: Vec::new(),
        detail: None,
    }
}

/// A round trip of `text` that began at `start` and ended now with `error` (if any).
pub fn round_trip(text: &str, start: f64, target: &Target, error: Option<&Error>) {
    let calls = calls_served();
    if calls.is_empty() && !everything() {
        return;
    }
    let described = summary::of(text);
    let mut r = record("query", start, target);
    r.summary = Some(described.summary.clone());
    r.operation = described.operation.clone();
    r.collection = described.collection.clone();
    r.text = Some(text.to_string());
    r.batch_size = (calls.len() > 1).then_some(calls.len() as u32);
    r.calls = calls;
    if let Some(err) = error {
        failed(&mut r, err);
    }
    send(r);
}

/// A LISTEN connection ended (`how`: `Ended`'s name in `notifier.rs`: `Lost`, `Deaf`,
/// `ReadOnly`, `NotListening`); it was opened at `start`.
pub fn unlisten(how: &str, start: f64, target: &Target) {
    if !everything() {
        return;
    }
    let mut r = record("unlisten", start, target);
    let mut detail = String::new();
    for (i, c) in how.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            detail.push('-');
        }
        detail.push(c.to_ascii_lowercase());
    }
    r.detail = Some(detail);
    send(r);
}

/// Marks a record as ended by `err`.
pub fn failed(r: &mut TelemetryRecord, err: &Error) {
    r.sql_state = err.sql_state().map(str::to_string);
    r.code = Some(err.code().to_string());
}

/// Queues a record for JS, scheduling a call of the sink if none is on its way.
pub fn send(record: TelemetryRecord) {
    if !enabled() || (record.calls.is_empty() && !everything()) {
        return;
    }
    let Some(sink) = SINK.lock().unwrap_or_else(PoisonError::into_inner).clone() else {
        return;
    };
    {
        let mut q = queue();
        if q.records.len() >= MOST_QUEUED {
            return;
        }
        q.records.push(record);
        if std::mem::replace(&mut q.scheduled, true) {
            return;
        }
    }
    let status = sink.call((), ThreadsafeFunctionCallMode::NonBlocking);
    // The callback clears `scheduled` as it takes the records (see `telemetry_sink`).
    if status != Status::Ok {
        queue().scheduled = false;
    }
}
