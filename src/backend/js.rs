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
    Array, BigInt, Float64Array, FnArgs, FromNapiValue, Function, FunctionRef, Int32Array, JsValue,
    Object, PromiseRaw, ToNapiValue, Unknown,
};
use napi::{sys, Env, ValueType};
use serde_json::Value;

use super::check::Checker as Sweeper;
use super::notify::{payloads, Written};
use super::rows::{Cell, Param, Row};
use crate::tail::Source;

/// Most writes queued for `lib/client-hub.cjs` to announce.
const MOST_QUEUED: usize = 100_000;
use crate::error::{Error, Result};
use crate::sql::{Kind, Statement};

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
type Finisher = Box<dyn FnOnce(&Env, Unknown) -> napi::Result<sys::napi_value> + Send>;

/// `failed` of an adapter's outcome: the client threw or rejected, or the call ran out
/// of time or queue space (see `lib/driver.cjs`).
#[derive(Debug, Default)]
struct AdapterFailure {
    message: Option<String>,
    /// QUERY_TIMEOUT, NO_FREE_CONNECTION, OVERLOADED, or the driver's own code.
    code: Option<String>,
    /// Where the call was: "queued", "connect" or "query".
    phase: Option<String>,
}

impl AdapterFailure {
    fn read(failed: &Object) -> napi::Result<Self> {
        Ok(AdapterFailure {
            message: text_field(failed, "message")?,
            code: text_field(failed, "code")?,
            phase: text_field(failed, "phase")?,
        })
    }
}

/// A string property of an adapter's object; None when absent or not a string.
fn text_field(object: &Object, field: &str) -> napi::Result<Option<String>> {
    match object.get::<Unknown>(field)? {
        Some(value) if value.get_type()? == ValueType::String => {
            // SAFETY: a live value of the object's env, on its JS thread, checked to be a string.
            Ok(Some(unsafe {
                String::from_napi_value(value.value().env, value.raw())?
            }))
        }
        _ => Ok(None),
    }
}

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
                let finish = lock(&queries)
                    .queries
                    .remove(&ticket)
                    .ok_or_else(|| napi::Error::from(Error::Closed))?;
                finish(ctx.env, outcome).map(Raw)
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
        let finisher: Finisher = Box::new(move |env, outcome| {
            done(read_rows(env, &columns, outcome));
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
        let finisher: Finisher = Box::new(move |env, outcome| {
            let value = finish(read_rows(env, &columns, outcome)?)?;
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

/// One column of an outcome, as the adapter sent it.
enum Sent {
    /// Integers (NaN for NULL).
    Ints(Float64Array),
    /// A text column's values, joined and cut apart again.
    Texts(std::vec::IntoIter<Cell>),
    /// The values as they came, read one by one (`cell`).
    Values(Array<'static>),
}

/// The rows of a settled query, from the adapter's outcome (the protocol is written at
/// the top of `lib/driver.cjs`): `{ failed }`, `{ malformed }`, or `{ rows, columns }`
/// (and `notAnObject` for a row that is not an object, after the rows before it).
/// Cells are read row by row, so the first wrong value reported is the first in the rows.
fn read_rows(env: &Env, statement: &Statement, outcome: Unknown) -> Result<Vec<Row>> {
    let protocol = || Error::MalformedResult("the adapter's columns are not as asked".into());
    if outcome.get_type()? != ValueType::Object {
        return Err(protocol());
    }
    // SAFETY: `outcome` is a live value of `env`, on its JS thread, checked to be an object.
    let outcome = unsafe { Object::from_napi_value(env.raw(), outcome.raw())? };
    if let Some(failed) = outcome.get::<Object>("failed")? {
        return Err(failure(&AdapterFailure::read(&failed)?));
    }
    if let Some(got) = outcome.get::<String>("malformed")? {
        return Err(malformed(&got));
    }
    let rows = outcome.get::<u32>("rows")?.ok_or_else(protocol)? as usize;
    let sent = outcome.get::<Array>("columns")?.ok_or_else(protocol)?;
    if sent.len() as usize != statement.columns.len() {
        return Err(protocol());
    }
    let mut columns = Vec::with_capacity(statement.columns.len());
    for (i, column) in statement.columns.iter().enumerate() {
        let sent = sent.get::<Object>(i as u32)?.ok_or_else(protocol)?;
        let column = if let Some(values) = sent.get::<Array<'static>>("values")? {
            (values.len() as usize == rows)
                .then_some(Sent::Values(values))
                .ok_or_else(protocol)?
        } else if column.kind == Kind::Int {
            let ints = sent.get::<Float64Array>("ints")?.ok_or_else(protocol)?;
            (ints.len() == rows)
                .then_some(Sent::Ints(ints))
                .ok_or_else(protocol)?
        } else {
            let text = sent.get::<String>("text")?.ok_or_else(protocol)?;
            let lengths = sent.get::<Int32Array>("lengths")?.ok_or_else(protocol)?;
            if lengths.len() != rows {
                return Err(protocol());
            }
            Sent::Texts(split_joined(statement, i, &text, &lengths)?.into_iter())
        };
        columns.push(column);
    }
    let mut read = Vec::with_capacity(rows);
    for n in 0..rows {
        let mut cells = Vec::with_capacity(columns.len());
        for (column, sent) in statement.columns.iter().zip(columns.iter_mut()) {
            cells.push(match sent {
                Sent::Ints(values) if values[n].is_nan() => Cell::Null,
                Sent::Ints(values) => checked_int(column.name, values[n] as i64)?,
                Sent::Texts(cells) => cells.next().unwrap_or(Cell::Null),
                Sent::Values(values) => match values.get::<Unknown>(n as u32)? {
                    Some(value) => cell(column.name, column.kind, value)?,
                    None => Cell::Null,
                },
            });
        }
        read.push(Row(cells));
    }
    if let Some(bad) = outcome.get::<Object>("notAnObject")? {
        let row = bad.get::<u32>("row")?.ok_or_else(protocol)?;
        let got = text_field(&bad, "got")?.ok_or_else(protocol)?;
        return Err(Error::MalformedResult(format!(
            "row {row} of the client's query result is {got}, not an object"
        )));
    }
    Ok(read)
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
    Ok(super::rows::joined_cells(values.into_iter()))
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

/// The adapter's `{ malformed }`: the client's query resolved to something without a
/// rows array.
fn malformed(got: &str) -> Error {
    Error::MalformedResult(format!(
        "the client's query() must resolve to an object with a rows array \
         (like pg's QueryResult), but it resolved to {got}"
    ))
}

/// A client's failure, classified as the Rust pool's are: by SQLSTATE when the driver
/// gives one (`Error::from_server`), else by the driver's code: it could not connect, or
/// it lost the connection while the statement ran. The adapter marks failures that came
/// while it checked a connection out of the client's pool (`phase: "connect"`).
fn failure(failed: &AdapterFailure) -> Error {
    let message = failed
        .message
        .clone()
        .unwrap_or_else(|| "the client's query() failed".to_string());
    let code = failed.code.as_deref().unwrap_or("");
    let phase = failed.phase.as_deref();
    let at_connect = phase == Some("connect");
    match code {
        "QUERY_TIMEOUT" => {
            return Error::Timeout {
                message,
                sql_state: None,
                // Still queued or waiting for a connection: never sent.
                sent: !matches!(phase, Some("queued" | "connect")),
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

    fn failed(message: &str, code: Option<&str>, phase: Option<&str>) -> Error {
        failure(&AdapterFailure {
            message: Some(message.into()),
            code: code.map(Into::into),
            phase: phase.map(Into::into),
        })
    }

    #[test]
    fn client_failures_keep_message_and_sql_state() {
        let err = failed("duplicate key", Some("23505"), None);
        assert_eq!(err.code(), "DATABASE_ERROR");
        assert_eq!(err.to_string(), "duplicate key");
        for errno in ["ECONNRESET", "EPIPE", "CONNECTION_CLOSED"] {
            let err = failed("m", Some(errno), None);
            assert_eq!(err.code(), "CONNECTION_ERROR", "{errno}");
        }
        let err = failed("Connection terminated unexpectedly", None, None);
        assert_eq!(err.code(), "CONNECTION_ERROR");
        let err = failed("m", Some("EWHATEVER"), None);
        assert_eq!(err.code(), "CLIENT_ERROR");
        let err = failed("m", Some("OVERLOADED"), None);
        assert_eq!((err.code(), err.retryable()), ("OVERLOADED", true));
        let err = failed("m", Some("57014"), None);
        assert_eq!(err.code(), "QUERY_TIMEOUT");
        let err = failed("m", Some("3D000"), None);
        assert_eq!((err.code(), err.retryable()), ("CONNECTION_ERROR", false));
        let err = failed("timeout exceeded when trying to connect", None, None);
        assert_eq!((err.code(), err.retryable()), ("CONNECTION_ERROR", true));
        assert!(err.to_string().starts_with("could not connect"));
        let err = failed("m", Some("ECONNRESET"), None);
        assert!(err.to_string().starts_with("lost the connection"));
        let err = failed("m", Some("ECONNRESET"), Some("connect"));
        assert!(err.to_string().starts_with("could not connect"));
        let err = failed("m", None, None);
        assert_eq!(err.code(), "CLIENT_ERROR");
    }

    #[test]
    fn malformed_results_say_what_came_back() {
        let err = malformed("undefined");
        assert_eq!(err.code(), "MALFORMED_RESULT");
        assert!(err.to_string().contains("resolved to undefined"));
    }
}
