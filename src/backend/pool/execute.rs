//! One statement on one connection: prepared (cached per connection), or unnamed in a
//! pipelined transaction behind a transaction pooler; and its rows read into `Row`s.

use deadpool_postgres::Object;
use tokio_postgres::types::{ToSql, Type};

use super::pooler::type_of;
use crate::backend::rows::{joined_cells, Cell, Param, Row};
use crate::error::Result;
use crate::sql::{Kind, Statement};

/// Runs one statement on a connection and reads its rows. `begin`: behind a transaction
/// pooler, the statement goes unnamed in a transaction that `begin` starts, pipelined.
pub(super) async fn run(
    client: &Object,
    statement: &Statement,
    params: &[Param],
    begin: Option<String>,
) -> Result<Vec<Row>> {
    let rows = match begin {
        None => {
            let prepared = client.prepare_cached(&statement.text).await?;
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(as_sql).collect();
            client.query(&prepared, &refs).await?
        }
        Some(begin) => {
            let typed: Vec<(&(dyn ToSql + Sync), Type)> =
                params.iter().map(|p| (as_sql(p), type_of(p))).collect();
            // Polled together, the three go out in one write: one round trip.
            let (began, rows, committed) = tokio::join!(
                client.batch_execute(&begin),
                client.query_typed(&statement.text, &typed),
                client.batch_execute("COMMIT"),
            );
            began?;
            let rows = rows?;
            committed?;
            rows
        }
    };
    let mut joined = match statement.joined {
        Some(column) => {
            let texts = rows
                .iter()
                .map(|row| row.try_get::<_, Option<&str>>(column))
                .collect::<Result<Vec<_>, _>>()?;
            joined_cells(texts.into_iter()).into_iter()
        }
        None => Vec::new().into_iter(),
    };
    rows.iter()
        .map(|row| {
            let cells = statement
                .columns
                .iter()
                .enumerate()
                .map(|(i, column)| {
                    if statement.joined == Some(i) {
                        return Ok(joined.next().unwrap_or(Cell::Null));
                    }
                    Ok(match column.kind {
                        Kind::Int => row
                            .try_get::<_, Option<i32>>(i)?
                            .map_or(Cell::Null, |v| Cell::Int(v.into())),
                        Kind::Text => row
                            .try_get::<_, Option<String>>(i)?
                            .map_or(Cell::Null, Cell::Text),
                    })
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
            Ok(Row(cells))
        })
        .collect()
}

fn as_sql(param: &Param) -> &(dyn ToSql + Sync) {
    match param {
        Param::Text(v) => v,
        Param::OptText(v) => v,
        Param::Int(v) => v,
        Param::OptInt(v) => v,
        Param::OptIntArray(v) => v,
        Param::BigInt(v) => v,
        Param::TextArray(v) => v,
        Param::OptTextArray(v) => v,
        Param::IntArray(v) => v,
        Param::BigIntArray(v) => v,
    }
}
