//! Streams this process writes: appended to through any of its stores lately, and not
//! seen written elsewhere since.
//!
//! A JS client's reader of such a stream is woken by the appends themselves
//! (`wakeups.rs`), so it does not need the client's LISTEN connection
//! (`lib/client-hub.cjs`): with no other reader needing it, that connection closes, and
//! the chunks no longer come back as this process's own notifications (which cost the
//! listening server backend a transaction per chunk, and the process a message to pass
//! over). Writes from elsewhere still reach such a reader: the shared check
//! (`backend/check.rs`) finds them within `pollIntervalMs`, and a stream it finds so is no
//! longer taken as written here, so its readers' next wait starts the listener again. A
//! stream only created here is not taken as written here: its chunks may come from a
//! worker elsewhere.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A stream is taken as written here this long after its last write here.
const FOR: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Written {
    /// By status table (as `sql::wake_key` spells it), then stream id: the last write here.
    streams: HashMap<String, HashMap<String, Instant>>,
    len: usize,
    /// Size at which entries older than `FOR` are swept out (doubling, so sweeps cost
    /// O(1) per write).
    sweep_at: usize,
}

static WRITTEN: LazyLock<Mutex<Written>> = LazyLock::new(Default::default);

fn written() -> std::sync::MutexGuard<'static, Written> {
    WRITTEN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The stream was created or appended to through a store of this process.
pub fn mark(table: &str, id: &str) {
    let now = Instant::now();
    let mut written = written();
    if let Some(at) = written
        .streams
        .get_mut(table)
        .and_then(|ids| ids.get_mut(id))
    {
        *at = now;
        return;
    }
    if written.len >= written.sweep_at {
        let mut len = 0;
        written.streams.retain(|_, ids| {
            ids.retain(|_, at| now.duration_since(*at) < FOR);
            len += ids.len();
            !ids.is_empty()
        });
        written.len = len;
        written.sweep_at = (len * 2).max(1024);
    }
    written.len += 1;
    written
        .streams
        .entry(table.to_string())
        .or_default()
        .insert(id.to_string(), now);
}

/// Whether the stream is taken as written here (see the module's documentation).
pub fn is(table: &str, id: &str) -> bool {
    written()
        .streams
        .get(table)
        .and_then(|ids| ids.get(id))
        .is_some_and(|at| at.elapsed() < FOR)
}

/// A look at the database that began at `since` found the stream written past what its
/// readers here had: unless it was written here since (the look may have seen that write
/// before this process's store heard back), it is written elsewhere too.
pub fn elsewhere(table: &str, id: &str, since: Instant) {
    let mut written = written();
    let Some(ids) = written.streams.get_mut(table) else {
        return;
    };
    if ids.get(id).is_some_and(|at| *at < since) {
        ids.remove(id);
        written.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_written_here_until_seen_written_elsewhere() {
        assert!(!is("t_here", "a"));
        mark("t_here", "a");
        assert!(is("t_here", "a"));
        assert!(!is("t_here", "b"), "another stream");
        assert!(!is("t_other", "a"), "another table");
        let before = Instant::now();
        mark("t_here", "a");
        elsewhere("t_here", "a", before);
        assert!(is("t_here", "a"), "written here after the look began");
        elsewhere("t_here", "a", Instant::now());
        assert!(!is("t_here", "a"));
        mark("t_here", "a");
        assert!(is("t_here", "a"), "written here again");
    }

    #[test]
    fn old_entries_are_swept() {
        for i in 0..3000 {
            mark("t_sweep", &i.to_string());
        }
        let len = written().len;
        assert!(len >= 3000, "recent entries stay ({len})");
        let total: usize = written().streams.values().map(HashMap::len).sum();
        assert_eq!(written().len, total, "the count matches the entries");
    }
}
