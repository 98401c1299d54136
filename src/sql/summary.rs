//! What a statement does, in OpenTelemetry's terms: `db.query.summary` (each operation
//! and the table it works on, in order: `UPDATE aibind_stream_status INSERT
//! aibind_stream_chunks`), `db.operation.name` and `db.collection.name`. Made from the
//! text once per statement (it names tables only; values are `$n` placeholders).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub summary: String,
    /// The first operation.
    pub operation: Option<String>,
    /// The table, when the statement works on one only.
    pub collection: Option<String>,
}

/// `describe(text)`, remembered per text (the package has a few dozen statements).
pub fn of(text: &str) -> Arc<Described> {
    static KNOWN: Mutex<Option<HashMap<String, Arc<Described>>>> = Mutex::new(None);
    let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
    let known = known.get_or_insert_with(HashMap::new);
    if let Some(found) = known.get(text) {
        return found.clone();
    }
    let described = Arc::new(describe(text));
    if known.len() < 1_000 {
        known.insert(text.to_string(), described.clone());
    }
    described
}

/// Words and the punctuation that matters, outside string literals.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            for c in chars.by_ref() {
                if c == '\'' {
                    break;
                }
            }
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut word = c.to_string();
            while let Some(&n) = chars.peek() {
                if n.is_alphanumeric() || n == '_' || n == '.' || n == '$' {
                    word.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(word);
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
        }
    }
    out
}

fn is(token: Option<&String>, word: &str) -> bool {
    token.is_some_and(|t| t.eq_ignore_ascii_case(word))
}

/// Describes a statement (see the module's comment).
pub fn describe(text: &str) -> Described {
    let t = tokens(text);
    // Names given with `name AS (`: common table expressions and aliases, not tables.
    let local: Vec<String> = (0..t.len())
        .filter(|&i| is(t.get(i + 1), "AS") && is(t.get(i + 2), "("))
        .map(|i| t[i].to_ascii_lowercase())
        .collect();
    let mut parts: Vec<(String, Option<String>)> = Vec::new();
    // `into`: a table name followed by its column list, not a function call.
    let table_at = |i: usize, into: bool| -> Option<String> {
        let name = t.get(i)?;
        let keyword = ["select", "lateral", "only", "(", "unnest"];
        if keyword.contains(&name.to_ascii_lowercase().as_str())
            || (!into && is(t.get(i + 1), "("))
            || local.contains(&name.to_ascii_lowercase())
            || !name.starts_with(|c: char| c.is_alphabetic() || c == '_')
        {
            return None;
        }
        Some(name.clone())
    };
    let mut reads = Vec::new();
    for i in 0..t.len() {
        let word = t[i].to_ascii_uppercase();
        let write = match word.as_str() {
            "INSERT" if is(t.get(i + 1), "INTO") => table_at(i + 2, true).map(|n| ("INSERT", n)),
            // Not a row lock (`FOR UPDATE`, `FOR NO KEY UPDATE`) nor an upsert's `DO UPDATE`.
            "UPDATE"
                if !["FOR", "KEY", "DO"]
                    .iter()
                    .any(|w| is(t.get(i.wrapping_sub(1)), w)) =>
            {
                table_at(i + 1, false).map(|n| ("UPDATE", n))
            }
            "DELETE" if is(t.get(i + 1), "FROM") => table_at(i + 2, false).map(|n| ("DELETE", n)),
            "FROM" | "JOIN" if !is(t.get(i.wrapping_sub(1)), "DELETE") => {
                if let Some(n) = table_at(i + 1, false) {
                    reads.push(n);
                }
                None
            }
            _ => None,
        };
        if let Some((op, table)) = write {
            parts.push((op.into(), Some(table)));
        }
    }
    if parts.is_empty() {
        let mut seen: Vec<String> = Vec::new();
        for r in reads {
            if !seen.contains(&r) {
                seen.push(r);
            }
        }
        let first = t
            .iter()
            .find(|w| w.as_str() != "(")
            .map(|w| w.to_ascii_uppercase());
        let op = match first.as_deref() {
            Some("WITH") | None => "SELECT".to_string(),
            Some(op) => op.to_string(),
        };
        let collection = (seen.len() == 1).then(|| seen[0].clone());
        let summary = std::iter::once(op.clone())
            .chain(seen)
            .collect::<Vec<_>>()
            .join(" ");
        return Described {
            summary,
            operation: Some(op),
            collection,
        };
    }
    let mut tables: Vec<&String> = parts.iter().filter_map(|(_, t)| t.as_ref()).collect();
    tables.dedup();
    let collection = (tables.len() == 1).then(|| tables[0].clone());
    let summary = parts
        .iter()
        .map(|(op, t)| {
            format!("{op} {}", t.as_deref().unwrap_or(""))
                .trim()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(" ");
    Described {
        summary,
        operation: parts.first().map(|(op, _)| op.clone()),
        collection,
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn names_each_write_and_its_table_in_order() {
        let d = describe(
            "WITH s AS (UPDATE st SET n = n + 1 WHERE id = $1 RETURNING n), \
             ins AS (INSERT INTO ch (id, seq) SELECT $1, n FROM s RETURNING seq) SELECT seq FROM ins",
        );
        assert_eq!(d.summary, "UPDATE st INSERT ch");
        assert_eq!(d.operation.as_deref(), Some("UPDATE"));
        assert_eq!(d.collection, None, "two tables");
    }

    #[test]
    fn a_read_names_its_tables_not_its_functions_or_expressions() {
        let d = describe(
            "SELECT w.id FROM json_to_recordset($1::text::json) AS w(id text) \
             LEFT JOIN app.status s ON s.id = w.id WHERE s.state <> 'FROM x'",
        );
        assert_eq!(d.summary, "SELECT app.status");
        assert_eq!(d.collection.as_deref(), Some("app.status"));
        let d = describe("SELECT pg_notify('ch', $1)");
        assert_eq!(d.summary, "SELECT");
    }

    #[test]
    fn a_row_lock_is_not_an_update_and_an_insert_names_its_table() {
        let d = describe(
            "WITH l AS (SELECT id FROM st WHERE id = $1 FOR UPDATE SKIP LOCKED), \
             ins AS (INSERT INTO ch (id, seq) SELECT $1, 1 FROM l RETURNING seq) SELECT seq FROM ins",
        );
        assert_eq!(d.summary, "INSERT ch");
        assert_eq!(d.collection.as_deref(), Some("ch"));
    }

    #[test]
    fn an_upsert_is_an_insert() {
        let d = describe(
            "INSERT INTO conv (id, data) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
        );
        assert_eq!(d.summary, "INSERT conv");
        assert_eq!(d.collection.as_deref(), Some("conv"));
    }

    #[test]
    fn one_table_is_the_collection() {
        let d = describe("DELETE FROM conv WHERE expires_at < $1 RETURNING id");
        assert_eq!(d.summary, "DELETE conv");
        assert_eq!(d.collection.as_deref(), Some("conv"));
    }
}
