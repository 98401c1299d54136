//! What a pool or a JS client knows of its database having Citus (`citus.rs`).

use std::sync::atomic::{AtomicU8, Ordering};

use super::rows::Row;

/// Unknown until the first answer; then known for the backend's life.
#[derive(Default)]
pub struct CitusState(AtomicU8);

const NO: u8 = 1;
const YES: u8 = 2;

impl CitusState {
    /// `Some(true)` on Citus, `Some(false)` elsewhere, `None` not known yet.
    pub fn known(&self) -> Option<bool> {
        match self.0.load(Ordering::Acquire) {
            NO => Some(false),
            YES => Some(true),
            _ => None,
        }
    }

    pub fn set(&self, citus: bool) {
        self.0
            .store(if citus { YES } else { NO }, Ordering::Release);
    }

    /// Takes the answer of `sql::citus::detect()`.
    pub fn set_from(&self, rows: &[Row]) -> bool {
        let citus = rows.first().and_then(|r| r.int(0)).unwrap_or(0) > 0;
        self.set(citus);
        citus
    }
}
