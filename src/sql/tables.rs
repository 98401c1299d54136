//! Table names: their checking (they are pasted into the statements unquoted), the name
//! wake-ups know a status table by, and the tables' DDL.

use crate::error::{Error, Result};

/// The name wake-ups know a status table by: the one table however it is spelled.
/// Unquoted names fold to lower case, and an unqualified one is in the default schema
/// (`public`, with PostgreSQL's default search_path).
pub fn wake_key(table: &str) -> String {
    let table = table.to_ascii_lowercase();
    if table.contains('.') {
        table
    } else {
        format!("public.{table}")
    }
}

/// The key of a stream's finishes alone (stop, complete, fail), under which stop signals
/// wait: they are not woken by appends.
pub fn finish_key(wake_key: &str) -> String {
    format!("{wake_key}#finished")
}

/// Checks a table-name option: `name` or `schema.name`, each part a plain SQL identifier
/// (a letter or `_`, then letters, digits, `_` or `$`, at most 63 bytes).
pub fn table_name(option: &str, value: &str) -> Result<String> {
    let parts: Vec<&str> = value.split('.').collect();
    let ok = parts.len() <= 2
        && parts.iter().all(|p| {
            let mut chars = p.chars();
            matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
                && p.len() <= 63
        });
    if ok {
        Ok(value.to_string())
    } else {
        Err(Error::InvalidOption(format!(
            "option \"{option}\" must be a table name like my_table or my_schema.my_table \
             (letters, digits and _, starting with a letter or _), got {value:?}"
        )))
    }
}

/// The tables both stores need, as the original's README has them, and the indexes on
/// `expires_at` that keep `cleanup` from reading whole tables once they are large. Each
/// statement is idempotent (`IF NOT EXISTS`), so running them again, or on tables made
/// by hand from the original's README, changes nothing but adds what is missing.
pub fn schema(chunks: &str, status: &str, conversations: &str) -> Vec<String> {
    // An index lives in its table's schema; its name is the table's, cut to fit 63 bytes.
    let index = |table: &str| {
        let bare = table.rsplit('.').next().unwrap_or(table);
        format!("{}_expires_at_idx", &bare[..bare.len().min(47)])
    };
    // The schemas of schema-qualified names, each once, first.
    let mut schemas: Vec<&str> = [chunks, status, conversations]
        .iter()
        .filter_map(|table| table.split_once('.').map(|(schema, _)| schema))
        .collect();
    schemas.dedup();
    let mut statements: Vec<String> = schemas
        .iter()
        .map(|schema| format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .collect();
    statements.extend([
        format!(
            "CREATE TABLE IF NOT EXISTS {chunks} (\n  id TEXT NOT NULL,\n  seq INTEGER NOT NULL,\n  \
             data TEXT NOT NULL,\n  PRIMARY KEY (id, seq)\n)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {status} (\n  id TEXT PRIMARY KEY,\n  \
             state TEXT NOT NULL DEFAULT 'active',\n  error TEXT,\n  \
             total_chunks INTEGER NOT NULL DEFAULT 0,\n  expires_at BIGINT NOT NULL\n)"
        ),
        format!("CREATE INDEX IF NOT EXISTS {} ON {status} (expires_at)", index(status)),
        format!(
            "CREATE TABLE IF NOT EXISTS {conversations} (\n  session_id TEXT PRIMARY KEY,\n  \
             data TEXT NOT NULL,\n  expires_at BIGINT NOT NULL\n)"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {conversations} (expires_at)",
            index(conversations)
        ),
    ]);
    statements
}
