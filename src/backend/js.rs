//! The JS backend: the caller's own `query(sql, params)`, called on the JS thread.
//!
//! `lib/driver.cjs` wraps the client's `query` in an adapter that settles every call
//! through `settle`, a native function made once per backend; the protocol (the
//! adapter's arguments, the outcomes, pages by column) is written down once, at the top
//! of `lib/driver.cjs`. `settle` runs the statement's `finish` on the rows and returns
//! the result, so the adapter's own promise is the method's promise: no thread in
//! between, and nothing allocated per call on the JS side beyond the client's own work.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use napi::bindgen_prelude::{
    Array, BigInt, Float64Array, FnArgs, FromNapiValue, Function, FunctionRef, Int32Array,
    JsObjectValue, JsValue, Object, PromiseRaw, ToNapiValue, Unknown,
};
use napi::{sys, Env, ValueType};
use serde_json::Value;

use super::notify::{payloads, Written};
use super::sweep::Sweeper;
use super::{Cell, Param, Row};
use crate::tail::Source;

/// Most writes queued for `lib/client-hub.cjs` to announce.
const MOST_QUEUED: usize = 100_000;
use crate::error::{Error, Result};
use crate::sql::{Kind, Statement};

type Args = FnArgs<(String, Vec<Value>, u32, Option<String>, Option<f64>)>;

/// `(settle, queryTimeoutMs) => (sql, params, ticket, columns, withinMs) => Promise<unknown>`,
/// as `adapt` in `lib/driver.cjs` makes it.
pub type MakeAdapter<'f> = Function<
    'f,
    FnArgs<(Function<'f, SettleArgs, Raw>, f64)>,
    Function<'f, Args, Unknown<'static>>,
>;

type SettleArgs = FnArgs<(u32, Unknown<'static>, Option<Array<'static>>)>;

/// What to do with the rows of one query: turn them into the method's JS result.
type Finisher =
    Box<dyn FnOnce(&Env, Unknown, Option<Array>) -> napi::Result<sys::napi_value> + Send>;

#[derive(Default)]
struct Pending {
    next: u32,
    queries: HashMap<u32, Finisher>,
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
    pub sweeper: Sweeper,
    /// Whether `lib/client-hub.cjs` runs the shared check, and whether its LISTEN connection is
    /// known to deliver.
    pub checking: AtomicBool,
    pub heard: AtomicBool,
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
                let columns = if ctx.length() >= 3 {
                    ctx.get::<Option<Array>>(2)?
                } else {
                    None
                };
                let finish = lock(&queries)
                    .queries
                    .remove(&ticket)
                    .ok_or_else(|| napi::Error::from(Error::Closed))?;
                finish(ctx.env, outcome, columns).map(Raw)
            })?;
        let adapter = make_adapter.call(FnArgs::from((settle, query_timeout_ms)))?;
        Ok(JsQuery {
            query: adapter.create_ref()?,
            pending,
            source,
            outbox: Mutex::default(),
            sweeper: Sweeper::default(),
            checking: AtomicBool::new(false),
            heard: AtomicBool::new(false),
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
        let finisher: Finisher = Box::new(move |env, outcome, by_column| {
            done(read_rows(env, &columns, outcome, by_column));
            // SAFETY: `env` is the live env of the JS thread this settle call runs on.
            unsafe { <()>::to_napi_value(env.raw(), ()) }
        });
        self.call(env, statement, params, None, finisher)
            .map(|_| ())
    }

    pub fn run<'env, T, F>(
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
        let columns = statement.clone();
        let finisher: Finisher = Box::new(move |env, outcome, by_column| {
            let value = finish(read_rows(env, &columns, outcome, by_column)?)?;
            // SAFETY: `env` is the live env of the JS thread this settle call runs on.
            unsafe { T::to_napi_value(env.raw(), value) }
        });
        let returned = self.call(env, statement, params, within, finisher)?;
        // SAFETY: a live value of this env; the adapter always returns a promise.
        unsafe { PromiseRaw::<T>::from_napi_value(env.raw(), returned) }
    }

    /// Calls the adapter with a ticket for `finisher`; returns the adapter's promise.
    fn call(
        &self,
        env: &Env,
        statement: &Statement,
        params: Vec<Param>,
        within: Option<std::time::Duration>,
        finisher: Finisher,
    ) -> napi::Result<sys::napi_value> {
        let ticket = {
            let mut pending = lock(&self.pending);
            pending.next = pending.next.wrapping_add(1);
            let ticket = pending.next;
            pending.queries.insert(ticket, finisher);
            ticket
        };
        let params = params.into_iter().map(to_json).collect();
        let called = self.query.borrow_back(env).and_then(|f| {
            // Many rows (a page): ask for them by column, `name:i` or `name:t` each.
            let by_column = statement.joined.map(|_| {
                let spec: Vec<_> = statement
                    .columns
                    .iter()
                    .map(|c| format!("{}:{}", c.name, if c.kind == Kind::Int { 'i' } else { 't' }))
                    .collect();
                spec.join(",")
            });
            f.call(FnArgs::from((
                statement.text.to_string(),
                params,
                ticket,
                by_column,
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

/// The rows of a settled query: by column when the adapter sent them so, else row by row.
fn read_rows(
    env: &Env,
    statement: &Statement,
    outcome: Unknown,
    by_column: Option<Array>,
) -> Result<Vec<Row>> {
    match by_column {
        Some(by_column) if statement.joined.is_some() => rows_from_columns(statement, by_column),
        _ => rows_from_js(env, statement, outcome),
    }
}

fn client_failure(err: napi::Error) -> Error {
    Error::Client(format!(
        "the client's query function failed: {}",
        err.reason
    ))
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

/// The rows the adapter resolved with, read straight from the JS values: only the
/// columns the statement asks for, by name, leniently (drivers return int8 and counts as
/// strings, postgres.js may return BigInts).
fn rows_from_js(env: &Env, statement: &Statement, settled: Unknown) -> Result<Vec<Row>> {
    if !settled.is_array()? {
        // `{ failed }` or `{ malformed }`: small, read as JSON.
        // SAFETY: `settled` is a live value of `env`, on its JS thread.
        let outcome = unsafe { Value::from_napi_value(env.raw(), settled.raw())? };
        return Err(outcome_error(outcome));
    }
    // SAFETY: `settled` is a live value of `env` and was checked to be an array.
    let rows = unsafe { Array::from_napi_value(env.raw(), settled.raw())? };
    // The column names as JS strings, made once for all rows.
    let keys = statement
        .columns
        .iter()
        .map(|column| env.create_string(column.name))
        .collect::<napi::Result<Vec<_>>>()?;
    (0..rows.len())
        .map(|n| {
            let row = rows
                .get::<Unknown>(n)?
                .map_or(Ok(ValueType::Undefined), |r| r.get_type())?;
            if row != ValueType::Object {
                return Err(Error::MalformedResult(format!(
                    "row {n} of the client's query result is {}, not an object",
                    type_name(row)
                )));
            }
            let row = rows
                .get::<Object>(n)?
                .ok_or_else(|| napi::Error::from_reason("row"))?;
            statement
                .columns
                .iter()
                .zip(&keys)
                .map(|(column, key)| {
                    let value = row.get_property_unchecked(*key)?;
                    cell(column.name, column.kind, value)
                })
                .collect::<Result<Vec<_>>>()
                .map(Row)
        })
        .collect()
}

/// The rows the adapter sent by column (see `columnar` in `lib/driver.cjs`): per column, in the
/// statement's order, a Float64Array of integers (NaN for NULL), or a text column's values
/// joined into one string followed by an Int32Array of their UTF-16 lengths (-1 for NULL).
fn rows_from_columns(statement: &Statement, by_column: Array) -> Result<Vec<Row>> {
    let malformed = || Error::MalformedResult("the adapter's columns are not as asked".into());
    let mut at = 0;
    let mut columns = Vec::with_capacity(statement.columns.len());
    for (i, column) in statement.columns.iter().enumerate() {
        let cells = match column.kind {
            Kind::Int => {
                let values = by_column.get::<Float64Array>(at)?.ok_or_else(malformed)?;
                at += 1;
                values
                    .iter()
                    .map(|&v| {
                        if v.is_nan() {
                            Ok(Cell::Null)
                        } else {
                            checked_int(column.name, v as i64)
                        }
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            Kind::Text => {
                let text = by_column.get::<String>(at)?.ok_or_else(malformed)?;
                let lengths = by_column.get::<Int32Array>(at + 1)?.ok_or_else(malformed)?;
                at += 2;
                split_joined(statement, i, &text, &lengths)?
            }
        };
        columns.push(cells.into_iter());
    }
    let rows = columns.first().map_or(0, ExactSizeIterator::len);
    if columns.iter().any(|c| c.len() != rows) {
        return Err(malformed());
    }
    Ok((0..rows)
        .map(|_| {
            Row(columns
                .iter_mut()
                .map(|c| c.next().unwrap_or(Cell::Null))
                .collect())
        })
        .collect())
}

/// Cuts the adapter's joined text back into its values, by their UTF-16 lengths.
fn split_joined(
    statement: &Statement,
    column: usize,
    text: &str,
    lengths: &[i32],
) -> Result<Vec<Cell>> {
    let mut values = Vec::with_capacity(lengths.len());
    let mut rest = text;
    for &length in lengths {
        if length < 0 {
            values.push(None);
            continue;
        }
        let mut units = 0;
        let bytes = if rest.is_char_boundary(length as usize)
            && rest.as_bytes()[..length as usize].is_ascii()
        {
            length as usize
        } else {
            rest.char_indices()
                .find(|(_, c)| {
                    let reached = units >= length as usize;
                    units += c.len_utf16();
                    reached
                })
                .map_or(rest.len(), |(at, _)| at)
        };
        let (value, after) = rest.split_at(bytes);
        values.push(Some(value));
        rest = after;
    }
    if !rest.is_empty() {
        return Err(Error::MalformedResult(format!(
            "the joined values of column \"{}\" do not add up to the text sent",
            statement.columns[column].name
        )));
    }
    Ok(super::joined_cells(values.into_iter()))
}

/// The integers the stores read (seqs, chunk counts, row counts) are 0 to 2^31 - 1, as
/// the schema's `INTEGER` columns: anything else is not what the client should return.
fn checked_int(name: &str, n: i64) -> Result<Cell> {
    if (0..=i64::from(i32::MAX)).contains(&n) {
        Ok(Cell::Int(n))
    } else {
        Err(Error::MalformedResult(format!(
            "column \"{name}\" of the client's query result holds {n}, outside 0 to {}",
            i32::MAX
        )))
    }
}

fn cell(name: &str, kind: Kind, value: Unknown) -> Result<Cell> {
    let found = value.get_type()?;
    let wrong = |what: String| {
        Error::MalformedResult(format!(
            "column \"{name}\" of the client's query result holds {what}, expected {}",
            if kind == Kind::Int {
                "an integer"
            } else {
                "a string"
            }
        ))
    };
    // SAFETY (the four conversions below): each reads a live value of its own env, on the
    // JS thread, after `found` (its `typeof`) showed it to be of the type read.
    let raw = |v: &Unknown| (v.value().env, v.raw());
    match (kind, found) {
        (_, ValueType::Undefined | ValueType::Null) => Ok(Cell::Null),
        (Kind::Text, ValueType::String) => {
            let (env, v) = raw(&value);
            Ok(Cell::Text(unsafe { String::from_napi_value(env, v)? }))
        }
        (Kind::Int, ValueType::Number) => {
            let (env, v) = raw(&value);
            let n = unsafe { f64::from_napi_value(env, v)? };
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                checked_int(name, n as i64)
            } else {
                Err(wrong(format!("the number {n}")))
            }
        }
        (Kind::Int, ValueType::String) => {
            let (env, v) = raw(&value);
            let s = unsafe { String::from_napi_value(env, v)? };
            match s.trim().parse::<i64>() {
                Ok(n) => checked_int(name, n),
                Err(_) => Err(wrong(format!("the string {s:?}"))),
            }
        }
        (Kind::Int, ValueType::BigInt) => {
            let (env, v) = raw(&value);
            let (n, lossless) = unsafe { BigInt::from_napi_value(env, v)? }.get_i64();
            if lossless {
                checked_int(name, n)
            } else {
                Err(wrong("a BigInt out of range".into()))
            }
        }
        (_, other) => Err(wrong(type_name(other).into())),
    }
}

fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "a boolean",
        ValueType::Number => "a number",
        ValueType::String => "a string",
        ValueType::Symbol => "a symbol",
        ValueType::Object => "an object",
        ValueType::Function => "a function",
        ValueType::BigInt => "a BigInt",
        _ => "an unknown value",
    }
}

/// The adapter's `{ failed }` (the client threw or rejected) or `{ malformed }` (it
/// resolved to something without a rows array).
fn outcome_error(outcome: Value) -> Error {
    if let Some(failed) = outcome.get("failed") {
        return failure(failed);
    }
    let got = outcome
        .get("malformed")
        .and_then(Value::as_str)
        .unwrap_or("something else");
    Error::MalformedResult(format!(
        "the client's query() must resolve to an object with a rows array \
         (like pg's QueryResult), but it resolved to {got}"
    ))
}

/// A client's failure, classified as the Rust pool's are: by SQLSTATE when the driver
/// gives one (`Error::from_server`), else by the driver's code: it could not connect, or
/// it lost the connection while the statement ran. The adapter marks failures that came
/// while it checked a connection out of the client's pool (`phase: "connect"`).
fn failure(failed: &Value) -> Error {
    let message = failed
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the client's query() failed")
        .to_string();
    let code = failed.get("code").and_then(Value::as_str).unwrap_or("");
    let at_connect = failed.get("phase").and_then(Value::as_str) == Some("connect");
    match code {
        "QUERY_TIMEOUT" => {
            return Error::Timeout {
                message,
                sql_state: None,
                // Still queued or waiting for a connection: never sent.
                sent: !matches!(
                    failed.get("phase").and_then(Value::as_str),
                    Some("queued" | "connect")
                ),
            };
        }
        "OVERLOADED" => return Error::Overloaded(message),
        "NO_FREE_CONNECTION" => {
            return Error::Connection {
                message,
                sql_state: None,
                retryable: true,
            }
        }
        _ => {}
    }
    // Drivers put a PostgreSQL error's SQLSTATE in `code`: five digits or upper-case
    // letters, at least one a digit (which tells it from errno codes like EPIPE).
    let is_sql_state = code.len() == 5
        && code
            .chars()
            .all(|ch| ch.is_ascii_digit() || ch.is_ascii_uppercase())
        && code.chars().any(|ch| ch.is_ascii_digit());
    if is_sql_state {
        return Error::from_server(code, message, at_connect);
    }
    // No connection was made: errno codes of connecting, postgres.js's own, and pg.Pool's
    // exhausted pool ("timeout exceeded when trying to connect").
    let not_connected = matches!(
        code,
        "ECONNREFUSED"
            | "ENOTFOUND"
            | "EAI_AGAIN"
            | "EHOSTUNREACH"
            | "ENETUNREACH"
            | "CONNECT_TIMEOUT"
    ) || message.contains("timeout exceeded when trying to connect");
    // The connection broke: errno codes, postgres.js's own, pg's "Connection terminated".
    let lost = matches!(
        code,
        "ECONNRESET"
            | "ETIMEDOUT"
            | "EPIPE"
            | "CONNECTION_CLOSED"
            | "CONNECTION_ENDED"
            | "CONNECTION_DESTROYED"
    ) || message.starts_with("Connection terminated");
    if not_connected || (lost && at_connect) {
        Error::Connection {
            message: format!("the client could not connect: {message}"),
            sql_state: None,
            retryable: true,
        }
    } else if lost {
        Error::Lost {
            message: format!("the client's connection broke: {message}"),
            sql_state: None,
        }
    } else {
        Error::Client(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_failures_keep_message_and_sql_state() {
        let err =
            outcome_error(json!({ "failed": { "message": "duplicate key", "code": "23505" } }));
        assert_eq!(err.code(), "DATABASE_ERROR");
        assert_eq!(err.to_string(), "duplicate key");
        for errno in ["ECONNRESET", "EPIPE", "CONNECTION_CLOSED"] {
            let err = outcome_error(json!({ "failed": { "message": "m", "code": errno } }));
            assert_eq!(err.code(), "CONNECTION_ERROR", "{errno}");
        }
        let err =
            outcome_error(json!({ "failed": { "message": "Connection terminated unexpectedly" } }));
        assert_eq!(err.code(), "CONNECTION_ERROR");
        let err = outcome_error(json!({ "failed": { "message": "m", "code": "EWHATEVER" } }));
        assert_eq!(err.code(), "CLIENT_ERROR");
        let err = outcome_error(json!({ "failed": { "message": "m", "code": "OVERLOADED" } }));
        assert_eq!((err.code(), err.retryable()), ("OVERLOADED", true));
        let err = outcome_error(json!({ "failed": { "message": "m", "code": "57014" } }));
        assert_eq!(err.code(), "QUERY_TIMEOUT");
        let err = outcome_error(json!({ "failed": { "message": "m", "code": "3D000" } }));
        assert_eq!((err.code(), err.retryable()), ("CONNECTION_ERROR", false));
        let err = outcome_error(
            json!({ "failed": { "message": "timeout exceeded when trying to connect" } }),
        );
        assert_eq!((err.code(), err.retryable()), ("CONNECTION_ERROR", true));
        assert!(err.to_string().starts_with("could not connect"));
        let err = outcome_error(json!({ "failed": { "message": "m", "code": "ECONNRESET" } }));
        assert!(err.to_string().starts_with("lost the connection"));
        let err = outcome_error(
            json!({ "failed": { "message": "m", "code": "ECONNRESET", "phase": "connect" } }),
        );
        assert!(err.to_string().starts_with("could not connect"));
        let err = outcome_error(json!({ "failed": { "message": "m", "code": null } }));
        assert_eq!(err.code(), "CLIENT_ERROR");
    }

    #[test]
    fn malformed_results_say_what_came_back() {
        let err = outcome_error(json!({ "malformed": "undefined" }));
        assert_eq!(err.code(), "MALFORMED_RESULT");
        assert!(err.to_string().contains("resolved to undefined"));
    }
}
