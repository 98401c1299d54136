//! Reading a JS client's outcome (the protocol is written at the top of
//! `lib/driver.cjs`): the rows by column, leniently typed, or the failure, classified.

use napi::bindgen_prelude::{
    Array, BigInt, Float64ArraySlice, FromNapiValue, Int32ArraySlice, JsValue, Object, Unknown,
};
use napi::{Env, ValueType};

use crate::backend::rows::{Cell, Row};
use crate::error::{Error, Result};
use crate::sql::{Kind, Statement};

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

/// One column of an outcome, as the adapter sent it.
enum Sent {
    /// Integers (NaN for NULL), read in place: the outcome lives through `read_rows`
    /// (an owned typed array would take a reference, and V8 a finalizer, per column).
    Ints(Float64ArraySlice<'static>),
    /// A text column's values, joined and cut apart again.
    Texts(std::vec::IntoIter<Cell>),
    /// The values as they came, read one by one (`cell`).
    Values(Array<'static>),
}

/// The rows of a settled query, from the adapter's outcome (the protocol is written at
/// the top of `lib/driver.cjs`): `{ failed }`, `{ malformed }`, or `{ rows, columns }`
/// (and `notAnObject` for a row that is not an object, after the rows before it).
/// Cells are read row by row, so the first wrong value reported is the first in the rows.
pub fn read_rows(env: &Env, statement: &Statement, outcome: Unknown) -> Result<Vec<Row>> {
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
            let ints = sent
                .get::<Float64ArraySlice<'static>>("ints")?
                .ok_or_else(protocol)?;
            (ints.len() == rows)
                .then_some(Sent::Ints(ints))
                .ok_or_else(protocol)?
        } else {
            let text = sent.get::<String>("text")?.ok_or_else(protocol)?;
            let lengths = sent
                .get::<Int32ArraySlice<'static>>("lengths")?
                .ok_or_else(protocol)?;
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

pub fn client_failure(err: napi::Error) -> Error {
    Error::Client(format!(
        "the client's query function failed: {}",
        err.reason
    ))
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
    Ok(crate::backend::rows::joined_cells(values.into_iter()))
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
                own_limit: false,
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
        let err = Error::from_server(code, message, at_connect);
        // The adapter had asked the server to cancel it (its deadline), so a 57014 is
        // the store's own doing, not the server's limit (phase "cancelled").
        return if phase == Some("cancelled") {
            err.cancelled_by_store()
        } else {
            err
        };
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
    // pg refuses a statement on a client whose connection broke before it was sent.
    let not_queryable = message.ends_with("and is not queryable");
    if not_connected || ((lost || not_queryable) && at_connect) {
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
        // pg's refusal on a client whose connection broke: a pool's (marked "connect" by
        // the adapter) may work with another client; a lone client's stays refused.
        let broke = "Client has encountered a connection error and is not queryable";
        let err = failed(broke, None, Some("connect"));
        assert_eq!((err.code(), err.retryable()), ("CONNECTION_ERROR", true));
        let err = failed(broke, None, Some("query"));
        assert_eq!((err.code(), err.retryable()), ("CLIENT_ERROR", false));
    }

    #[test]
    fn malformed_results_say_what_came_back() {
        let err = malformed("undefined");
        assert_eq!(err.code(), "MALFORMED_RESULT");
        assert!(err.to_string().contains("resolved to undefined"));
    }
}
