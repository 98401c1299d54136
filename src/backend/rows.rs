//! What goes into a statement and what comes back: parameters (`Param`), result rows
//! (`Row`) and their values (`Cell`), the same for both backends.

use std::sync::Arc;

use crate::error::Error;
use crate::sql::{Kind, Statement};

/// A statement parameter.
#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    OptText(Option<String>),
    Int(i32),
    OptInt(Option<i32>),
    BigInt(i64),
    TextArray(Vec<String>),
    OptTextArray(Vec<Option<String>>),
    IntArray(Vec<i32>),
    OptIntArray(Vec<Option<i32>>),
    BigIntArray(Vec<i64>),
}

impl Param {
    /// About how many bytes the value takes.
    pub fn size(&self) -> usize {
        match self {
            Param::Text(s) | Param::OptText(Some(s)) => s.len(),
            _ => 8,
        }
    }

    /// Parameter sets of one statement as the parameters of its combined form: one array
    /// per parameter.
    pub fn columns(sets: Vec<Vec<Param>>) -> Vec<Param> {
        let width = sets.first().map_or(0, Vec::len);
        let mut columns: Vec<Param> = match sets.first() {
            None => Vec::new(),
            Some(first) => first
                .iter()
                .map(|p| match p {
                    Param::Text(_) => Param::TextArray(Vec::with_capacity(sets.len())),
                    Param::OptText(_) => Param::OptTextArray(Vec::with_capacity(sets.len())),
                    Param::Int(_) => Param::IntArray(Vec::with_capacity(sets.len())),
                    Param::OptInt(_) => Param::OptIntArray(Vec::with_capacity(sets.len())),
                    _ => Param::BigIntArray(Vec::with_capacity(sets.len())),
                })
                .collect(),
        };
        for set in sets {
            for (column, param) in columns.iter_mut().zip(set).take(width) {
                match (column, param) {
                    (Param::TextArray(c), Param::Text(v)) => c.push(v),
                    (Param::OptTextArray(c), Param::OptText(v)) => c.push(v),
                    (Param::IntArray(c), Param::Int(v)) => c.push(v),
                    (Param::OptIntArray(c), Param::OptInt(v)) => c.push(v),
                    (Param::BigIntArray(c), Param::BigInt(v)) => c.push(v),
                    _ => {}
                }
            }
        }
        columns
    }
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
    /// Text of a joined column (see `Statement::joined`): bytes `start..end` of the text
    /// all the rows' values of that column share.
    Slice(Arc<str>, u32, u32),
}

/// One result row, its cells in the order of the statement's columns.
#[derive(Debug)]
pub struct Row(pub Vec<Cell>);

impl Row {
    pub fn int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Cell::Int(v)) => Some(*v),
            _ => None,
        }
    }

    pub fn take_text(&mut self, i: usize) -> Option<String> {
        match self.0.get_mut(i).map(|c| std::mem::replace(c, Cell::Null)) {
            Some(Cell::Text(s)) => Some(s),
            Some(Cell::Slice(text, start, end)) => Some(text[start as usize..end as usize].into()),
            _ => None,
        }
    }

    pub fn text(&self, i: usize) -> Option<&str> {
        match self.0.get(i) {
            Some(Cell::Text(s)) => Some(s),
            Some(Cell::Slice(text, start, end)) => Some(&text[*start as usize..*end as usize]),
            _ => None,
        }
    }
}

/// The cells of a joined text column: `texts` in row order (`None` for NULL) as slices of
/// one shared string.
pub fn joined_cells<'a>(texts: impl Iterator<Item = Option<&'a str>> + Clone) -> Vec<Cell> {
    let mut all = String::with_capacity(texts.clone().flatten().map(str::len).sum());
    let spans: Vec<_> = texts
        .map(|text| {
            text.map(|text| {
                let start = all.len() as u32;
                all.push_str(text);
                (start, all.len() as u32)
            })
        })
        .collect();
    let all: Arc<str> = all.into();
    spans
        .into_iter()
        .map(|span| {
            span.map_or(Cell::Null, |(start, end)| {
                Cell::Slice(all.clone(), start, end)
            })
        })
        .collect()
}

/// A required cell was NULL: only a hand-written client can cause that.
pub fn missing(statement: &Statement, column: usize) -> Error {
    let name = statement.columns.get(column).map_or("?", |c| c.name);
    let kind = match statement.columns.get(column).map(|c| c.kind) {
        Some(Kind::Int) => "an integer",
        _ => "a string",
    };
    Error::MalformedResult(format!(
        "the client's query result has no value for column \"{name}\" (expected {kind})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sets_become_one_array_per_parameter_in_call_order() {
        let sets = vec![
            vec![
                Param::Text("a".into()),
                Param::OptText(None),
                Param::Int(1),
                Param::OptInt(Some(4)),
                Param::BigInt(10),
            ],
            vec![
                Param::Text("b".into()),
                Param::OptText(Some("x".into())),
                Param::Int(2),
                Param::OptInt(None),
                Param::BigInt(20),
            ],
            vec![
                Param::Text("a".into()),
                Param::OptText(None),
                Param::Int(3),
                Param::OptInt(Some(6)),
                Param::BigInt(30),
            ],
        ];
        let columns = Param::columns(sets);
        assert_eq!(columns.len(), 5);
        assert!(matches!(&columns[0], Param::TextArray(v) if v == &["a", "b", "a"]));
        assert!(
            matches!(&columns[1], Param::OptTextArray(v) if v == &[None, Some("x".into()), None]),
            "NULLs keep their places"
        );
        assert!(matches!(&columns[2], Param::IntArray(v) if v == &[1, 2, 3]));
        assert!(matches!(&columns[3], Param::OptIntArray(v) if v == &[Some(4), None, Some(6)]));
        assert!(matches!(&columns[4], Param::BigIntArray(v) if v == &[10, 20, 30]));
    }

    #[test]
    fn an_all_null_column_and_no_sets() {
        let sets = vec![vec![Param::OptInt(None)], vec![Param::OptInt(None)]];
        assert!(matches!(&Param::columns(sets)[0], Param::OptIntArray(v) if v == &[None, None]));
        assert!(Param::columns(Vec::new()).is_empty());
    }

    #[test]
    fn a_joined_column_shares_one_string() {
        let cells = joined_cells([Some("ab"), None, Some(""), Some("été")].into_iter());
        let mut row = Row(cells);
        assert_eq!(row.text(0), Some("ab"));
        assert_eq!(row.text(1), None);
        assert_eq!(row.text(2), Some(""));
        assert_eq!(row.take_text(3).as_deref(), Some("été"));
        assert_eq!(row.text(3), None, "taken");
        let (Cell::Slice(a, ..), Cell::Slice(b, ..)) = (&row.0[0], &row.0[2]) else {
            panic!("slices");
        };
        assert!(Arc::ptr_eq(a, b));
    }
}
