//! The JS backend: the caller's own `query(sql, params)`, called from Rust.
//!
//! `index.js` hands us an adapter around the client's `query` that always settles: with
//! the rows array, with `{ failed: { message, code } }` when the client threw or
//! rejected, or with `{ malformed: "<what it got>" }` when the result was not
//! `{ rows: [...] }`. The function is weak (it never keeps the event loop alive) and is
//! called with `call_async_catch`, so even a throw that escaped the adapter becomes an
//! error here instead of a crash.

use napi::bindgen_prelude::{FnArgs, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use serde_json::Value;

use super::{Cell, Param, Row};
use crate::error::{Error, Result};
use crate::sql::{Kind, Statement};

type Args = FnArgs<(String, Vec<Value>)>;

/// `(sql: string, params: unknown[]) => Promise<unknown>`, weak, errors as values.
pub type JsQueryFn = ThreadsafeFunction<Args, Promise<Value>, Args, Status, false, true>;

pub struct JsQuery {
    query: JsQueryFn,
}

impl JsQuery {
    pub fn new(query: JsQueryFn) -> Self {
        JsQuery { query }
    }

    pub async fn query(&self, statement: &Statement, params: Vec<Param>) -> Result<Vec<Row>> {
        let params = params.into_iter().map(to_json).collect();
        let pending = self
            .query
            .call_async_catch(FnArgs::from((statement.text.clone(), params)))
            .await
            .map_err(client_failure)?;
        let value = pending.await.map_err(client_failure)?;
        rows_from_json(statement, value)
    }
}

fn client_failure(err: napi::Error) -> Error {
    Error::Client {
        message: format!("the client's query function failed: {}", err.reason),
        sql_state: None,
    }
}

fn to_json(param: Param) -> Value {
    match param {
        Param::Text(s) | Param::OptText(Some(s)) => Value::String(s),
        Param::OptText(None) => Value::Null,
        Param::Int(v) => v.into(),
        Param::BigInt(v) => v.into(),
    }
}

fn rows_from_json(statement: &Statement, value: Value) -> Result<Vec<Row>> {
    let rows = match value {
        Value::Array(rows) => rows,
        Value::Object(mut outcome) => {
            if let Some(failed) = outcome.remove("failed") {
                return Err(failure(failed));
            }
            let got = outcome
                .remove("malformed")
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "something else".into());
            return Err(Error::MalformedResult(format!(
                "the client's query() must resolve to an object with a rows array \
                 (like pg's QueryResult), but it resolved to {got}"
            )));
        }
        other => {
            return Err(Error::MalformedResult(format!(
                "the client's query() adapter resolved to {other}"
            )))
        }
    };
    rows.into_iter()
        .enumerate()
        .map(|(n, row)| {
            let Value::Object(mut row) = row else {
                return Err(Error::MalformedResult(format!(
                    "row {n} of the client's query result is {row}, not an object"
                )));
            };
            statement
                .columns
                .iter()
                .map(|column| cell(column.name, column.kind, row.remove(column.name)))
                .collect::<Result<Vec<_>>>()
                .map(Row)
        })
        .collect()
}

/// One column value as drivers return it: integers may come as numbers or, for BIGINT
/// and counts, as strings.
fn cell(name: &str, kind: Kind, value: Option<Value>) -> Result<Cell> {
    let wrong = |what: &Value| {
        Error::MalformedResult(format!(
            "column \"{name}\" of the client's query result holds {what}, expected {}",
            if kind == Kind::Int {
                "an integer"
            } else {
                "a string"
            }
        ))
    };
    match (kind, value) {
        (_, None | Some(Value::Null)) => Ok(Cell::Null),
        (Kind::Text, Some(Value::String(s))) => Ok(Cell::Text(s)),
        (Kind::Int, Some(Value::Number(n))) => match n.as_i64() {
            Some(v) => Ok(Cell::Int(v)),
            None => Err(wrong(&Value::Number(n))),
        },
        (Kind::Int, Some(Value::String(s))) => match s.trim().parse::<i64>() {
            Ok(v) => Ok(Cell::Int(v)),
            Err(_) => Err(wrong(&Value::String(s))),
        },
        (_, Some(other)) => Err(wrong(&other)),
    }
}

fn failure(failed: Value) -> Error {
    let message = failed
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the client's query() failed")
        .to_string();
    // Drivers put a PostgreSQL error's SQLSTATE in `code`: five digits or upper-case
    // letters, at least one a digit (which tells it from errno codes like EPIPE).
    let sql_state = failed
        .get("code")
        .and_then(Value::as_str)
        .filter(|c| {
            c.len() == 5
                && c.chars()
                    .all(|ch| ch.is_ascii_digit() || ch.is_ascii_uppercase())
                && c.chars().any(|ch| ch.is_ascii_digit())
        })
        .map(str::to_string);
    Error::Client { message, sql_state }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::StreamSql;
    use serde_json::json;

    #[test]
    fn reads_rows_by_column_name_leniently() {
        let sql = StreamSql::new("c", "s");
        let rows = rows_from_json(
            &sql.status,
            json!([{ "state": "done", "error": null, "total_chunks": "7", "extra": 1 }]),
        )
        .unwrap();
        assert_eq!(
            rows[0].0,
            vec![Cell::Text("done".into()), Cell::Null, Cell::Int(7)]
        );
    }

    #[test]
    fn refuses_wrong_shapes() {
        let sql = StreamSql::new("c", "s");
        let err = rows_from_json(&sql.append, json!([{ "seq": "x" }])).unwrap_err();
        assert_eq!(err.code(), "MALFORMED_RESULT");
        assert!(err.to_string().contains("\"seq\""));
        let err = rows_from_json(&sql.append, json!([{ "seq": 1.5 }])).unwrap_err();
        assert_eq!(err.code(), "MALFORMED_RESULT");
        let err = rows_from_json(&sql.append, json!([3])).unwrap_err();
        assert!(err.to_string().contains("not an object"));
        let err = rows_from_json(&sql.append, json!({ "malformed": "undefined" })).unwrap_err();
        assert!(err.to_string().contains("resolved to undefined"));
    }

    #[test]
    fn client_failures_keep_message_and_sql_state() {
        let sql = StreamSql::new("c", "s");
        let err = rows_from_json(
            &sql.append,
            json!({ "failed": { "message": "duplicate key", "code": "23505" } }),
        )
        .unwrap_err();
        assert_eq!(err.code(), "DATABASE_ERROR");
        assert_eq!(err.to_string(), "duplicate key");
        let err = rows_from_json(
            &sql.append,
            json!({ "failed": { "message": "socket hang up", "code": "ECONNRESET" } }),
        )
        .unwrap_err();
        assert_eq!(err.code(), "CLIENT_ERROR");
        let err = rows_from_json(
            &sql.append,
            json!({ "failed": { "message": "broken pipe", "code": "EPIPE" } }),
        )
        .unwrap_err();
        assert_eq!(err.code(), "CLIENT_ERROR");
    }
}
