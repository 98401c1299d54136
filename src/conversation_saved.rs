//! Read-your-writes for a conversation store with a read replica: what it saved (or
//! deleted), as the transaction id of each session's last write. A load goes to the
//! replica only when the replica's snapshot sees that transaction (`sql`'s
//! `load_on_replica`); while a write of the session is in flight, or its outcome is not
//! known, the load goes to the primary.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Sessions remembered; beyond it the half with the oldest transactions is forgotten,
/// and the newest of those becomes the floor every load on the replica must see.
const MOST_SESSIONS: usize = 10_000;

#[derive(Default)]
struct Entry {
    /// Writes in flight.
    pending: u32,
    /// Writes begun, ever: a write that began with none in flight and ended before the
    /// next began was the session's only one in between.
    begun: u64,
    /// The transaction of the last write; `None`: not known (a failed write, or writes
    /// that overlapped): loads go to the primary until a write settles it.
    xid: Option<u64>,
}

/// A write begun (`Saved::begin`), to be ended with `Saved::end`.
pub struct Write {
    session: String,
    alone_from: Option<u64>,
}

#[derive(Default)]
pub struct Saved {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Entry>,
    /// The newest transaction forgotten: loads on the replica need it ended.
    floor: Option<u64>,
}

/// Where a load may go: the replica if it sees `xid` (and everything up to `floor`).
#[derive(Debug, PartialEq)]
pub enum LoadFrom {
    Primary,
    Replica {
        xid: Option<u64>,
        floor: Option<u64>,
    },
}

impl Saved {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn begin(&self, session: &str) -> Write {
        let mut state = self.state();
        let entry = state.sessions.entry(session.to_string()).or_default();
        let alone_from = (entry.pending == 0).then_some(entry.begun);
        entry.pending += 1;
        entry.begun += 1;
        Write {
            session: session.to_string(),
            alone_from,
        }
    }

    /// The write ended: committed in transaction `xid`, or `None` (failed, or its outcome
    /// is unknown).
    pub fn end(&self, write: Write, xid: Option<u64>) {
        let mut state = self.state();
        let Some(entry) = state.sessions.get_mut(&write.session) else {
            return;
        };
        entry.pending -= 1;
        let alone = write.alone_from.is_some_and(|b| entry.begun == b + 1);
        entry.xid = if alone { xid } else { None };
        if state.sessions.len() > MOST_SESSIONS {
            state.forget_oldest();
        }
    }

    pub fn load_from(&self, session: &str) -> LoadFrom {
        let state = self.state();
        match state.sessions.get(session) {
            Some(entry) if entry.pending > 0 || entry.xid.is_none() => LoadFrom::Primary,
            entry => LoadFrom::Replica {
                xid: entry.and_then(|e| e.xid),
                floor: state.floor,
            },
        }
    }
}

impl State {
    fn forget_oldest(&mut self) {
        let mut settled: Vec<u64> = (self.sessions.values())
            .filter(|e| e.pending == 0)
            .filter_map(|e| e.xid)
            .collect();
        settled.sort_unstable();
        let Some(&newest) = settled.get(settled.len() / 2) else {
            return;
        };
        self.sessions
            .retain(|_, e| e.pending > 0 || e.xid.is_none_or(|x| x > newest));
        self.floor = self.floor.max(Some(newest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_go_to_the_replica_only_once_the_write_is_known() {
        let saved = Saved::default();
        assert_eq!(
            saved.load_from("a"),
            LoadFrom::Replica {
                xid: None,
                floor: None
            }
        );
        let write = saved.begin("a");
        assert_eq!(saved.load_from("a"), LoadFrom::Primary, "in flight");
        saved.end(write, Some(42));
        assert_eq!(
            saved.load_from("a"),
            LoadFrom::Replica {
                xid: Some(42),
                floor: None
            }
        );
        let failed = saved.begin("a");
        saved.end(failed, None);
        assert_eq!(saved.load_from("a"), LoadFrom::Primary, "outcome unknown");
        // Two writes that overlapped: which committed last is not known here.
        let (one, two) = (saved.begin("a"), saved.begin("a"));
        saved.end(one, Some(50));
        saved.end(two, Some(51));
        assert_eq!(saved.load_from("a"), LoadFrom::Primary);
        let alone = saved.begin("a");
        saved.end(alone, Some(60));
        assert!(matches!(
            saved.load_from("a"),
            LoadFrom::Replica { xid: Some(60), .. }
        ));
    }

    #[test]
    fn forgotten_sessions_raise_the_floor() {
        let saved = Saved::default();
        for i in 0..=MOST_SESSIONS as u64 {
            let write = saved.begin(&format!("s{i}"));
            saved.end(write, Some(100 + i));
        }
        let LoadFrom::Replica { xid, floor } = saved.load_from("s0") else {
            panic!("a settled session loads from the replica");
        };
        assert_eq!(xid, None, "forgotten");
        let floor = floor.expect("a floor");
        assert!(floor >= 100 && floor < 100 + MOST_SESSIONS as u64);
        assert!(saved.state().sessions.len() <= MOST_SESSIONS / 2 + 1);
    }
}
