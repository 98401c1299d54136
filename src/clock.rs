//! Wall-clock time in the scale the schema uses: milliseconds since the epoch,
//! the same as JavaScript's `Date.now()`.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Wall-clock time in milliseconds since the epoch, to the microsecond: when a chunk's
/// commit was acknowledged, for the delivery lag (`lib/metrics.cjs`).
pub fn now_ms_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| (d.as_micros() as f64) / 1000.0)
}

static LAG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the delivery lag is measured (JS: while a meter provider is registered):
/// chunks are then stamped with their commit time as they enter this process's tails.
pub fn lag_measured() -> bool {
    LAG.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn measure_lag(on: bool) {
    LAG.store(on, std::sync::atomic::Ordering::Relaxed);
}
