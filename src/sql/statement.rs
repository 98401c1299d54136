//! A statement as plain data: its text, the columns of its rows, and the text of its
//! other forms (combined, the lane's single call, the side path's).

use std::sync::Arc;

/// The kind of value a result column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
}

#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
}

/// One SQL statement and the columns its rows carry, in order. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Statement {
    pub text: Arc<str>,
    pub columns: &'static [Column],
    /// A text column whose values come as one string for all rows (the chunks of a
    /// page): one allocation and one conversion instead of one per row.
    pub joined: Option<usize>,
    /// The same work for many calls at once, which the Rust pool may send instead when it
    /// is busy (`backend/pool/combine/`): each parameter as an array, each row led by the
    /// 1-based position of its call. Plain data: the calls waiting to go out are the
    /// pool's (one queue per `Combined`, known by its address).
    pub combined: Option<Arc<Combined>>,
    /// The form sent instead on Citus (`citus.rs`), never combined.
    pub citus: Option<Arc<Statement>>,
}

/// The combined forms of a statement (see `Statement::combined`).
#[derive(Debug)]
pub struct Combined {
    /// Many calls at once: each parameter an array, each row led by its call's position.
    pub statement: Statement,
    /// For statements whose lane skips locked rows: the lane's form of a single call, and
    /// the side path's form, which waits for the lock.
    pub skipping: Option<(Statement, Statement)>,
    /// For durable appends: the lane's form of a single call that also announces its
    /// chunk, in its own transaction. The pool uses it while it is no slower
    /// (`backend/notify_choice.rs`).
    pub notifying: Option<Statement>,
    /// `notifying` with a fifth parameter: the payloads of announcements waiting in the
    /// pool (a JSON array), notified first in the same transaction.
    pub carrying: Option<Statement>,
    /// The store's `notifyBatchMs`: a lane append within this long of the last that
    /// announced inside holds its announcement back for the next to carry.
    pub notify_batch: std::time::Duration,
}

impl Statement {
    pub(super) fn new(text: String, columns: &'static [Column]) -> Self {
        Statement {
            text: text.into(),
            columns,
            joined: None,
            combined: None,
            citus: None,
        }
    }

    /// A statement that returns no rows the caller reads (DDL).
    pub fn plain(text: String) -> Self {
        Statement::new(text, &[])
    }

    /// A statement whose rows carry one text column (JSON): the look-ups of the
    /// `aibind-postgres` command, whose SQL is in `lib/inspect.cjs`.
    pub fn one_text(text: String) -> Self {
        Statement::new(
            text,
            &[Column {
                name: "json",
                kind: Kind::Text,
            }],
        )
    }

    pub(super) fn combined(mut self, text: String, columns: &'static [Column]) -> Self {
        self.combined = Some(Arc::new(Combined {
            statement: Statement::new(text, columns),
            skipping: None,
            notifying: None,
            carrying: None,
            notify_batch: std::time::Duration::ZERO,
        }));
        self
    }

    /// A combined form whose statements skip rows locked elsewhere (a call they do not
    /// store gets no row), and the form that waits for the lock, which such calls take
    /// instead (see `backend/pool/combine/`).
    ///
    /// `one` is the lane's form of a single call; this statement itself (which waits) is
    /// the side path's.
    pub(super) fn combined_skipping_locked(
        mut self,
        one: String,
        many: String,
        columns: &'static [Column],
    ) -> Self {
        let side = Statement::new(self.text.to_string(), self.columns);
        let one = Statement::new(one, self.columns);
        self.combined = Some(Arc::new(Combined {
            statement: Statement::new(many, columns),
            skipping: Some((one, side)),
            notifying: None,
            carrying: None,
            notify_batch: std::time::Duration::ZERO,
        }));
        self
    }

    /// The lane's single call in a form that also announces what it wrote (see
    /// `Combined::notifying`); after `combined_skipping_locked`.
    pub(super) fn lane_notifying(mut self, text: Option<String>, carrying: Option<String>) -> Self {
        let columns = self.columns;
        let combined = self.combined.as_mut().and_then(Arc::get_mut);
        let combined = combined.expect("a combined form not yet shared");
        combined.notifying = text.map(|text| Statement::new(text, columns));
        combined.carrying = carrying.map(|text| Statement::new(text, columns));
        self
    }

    /// Sets the combined form's `notify_batch` (before the statement is shared).
    pub(super) fn notify_batch(mut self, batch: std::time::Duration) -> Self {
        if let Some(combined) = self.combined.as_mut().and_then(Arc::get_mut) {
            combined.notify_batch = batch;
        }
        self
    }

    pub(super) fn on_citus(mut self, form: Statement) -> Self {
        self.citus = Some(Arc::new(form));
        self
    }

    /// This statement as a store sends it: on Citus (`Some(true)`: its Citus form, never
    /// combined), elsewhere (`Some(false)`: never its Citus form), or as the backend
    /// finds out (`None`).
    pub fn forced(self, citus: Option<bool>) -> Self {
        match (citus, &self.citus) {
            (Some(true), Some(form)) => (**form).clone(),
            (Some(true), None) => Statement {
                combined: None,
                ..self
            },
            (Some(false), _) => Statement {
                citus: None,
                ..self
            },
            (None, _) => self,
        }
    }

    pub(super) fn joined(mut self, column: usize) -> Self {
        self.joined = Some(column);
        self
    }
}
