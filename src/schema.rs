//! The schema tooling: the DDL of both stores' tables for chosen names (`schemaSql` and
//! `migrate` in `index.cjs`, and the `aibind-postgres migrate` command). The stores never
//! create tables on their own, as with the original.

use napi_derive::napi;

use crate::sql;

/// The table names to make the schema for (the stores' defaults when left out).
#[napi(object)]
#[derive(Default)]
pub struct SchemaOptions {
    pub chunks_table: Option<String>,
    pub status_table: Option<String>,
    /// The conversations table (`table` of `PostgresConversationStore`).
    pub conversations_table: Option<String>,
    /// Also distribute the tables with Citus, colocated, and create the functions the
    /// stores call there (docs/citus.md).
    pub citus: Option<bool>,
}

/// The DDL statements, one string each, in the order to run them.
#[napi]
pub fn schema_statements(options: Option<SchemaOptions>) -> napi::Result<Vec<String>> {
    let o = options.unwrap_or_default();
    let name = |option: &str, value: Option<String>, default: &str| {
        sql::table_name(option, value.as_deref().unwrap_or(default))
    };
    let chunks = name("chunksTable", o.chunks_table, "aibind_stream_chunks")?;
    let status = name("statusTable", o.status_table, "aibind_stream_status")?;
    let conversations = name(
        "conversationsTable",
        o.conversations_table,
        "aibind_conversations",
    )?;
    let mut statements = sql::schema(&chunks, &status, &conversations);
    if o.citus == Some(true) {
        statements.extend(sql::citus::schema(&chunks, &status, &conversations));
    }
    Ok(statements)
}
