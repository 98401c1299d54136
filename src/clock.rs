//! Wall-clock time in the scale the schema uses: milliseconds since the epoch,
//! the same as JavaScript's `Date.now()`.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
