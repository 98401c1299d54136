//! The shared check of waiting readers (`Checker`), for both backends.
//!
//! A reader with nothing left to read registers here while it waits. One task per pool
//! (`pool/mod.rs`; for JS clients `lib/client-hub.cjs` through `checkWaiting`) asks the
//! database, in one statement per status table, which of the waited-on streams
//! have chunks past the readers' cursors or have finished, and wakes those readers
//! (`wakeups.rs`); they then fetch their own pages. So 50 idle readers cost one statement
//! a tick, not 50.
//!
//! The tick is the readers' `pollIntervalMs` while this process cannot hear other
//! processes' writes. Once the pool's LISTEN connection has proved that it receives
//! notifications (`pool/notifier.rs`), writes through stores of this package arrive as
//! notifications and the check only catches writers that do not notify (the original
//! package, or JS-client stores in other processes): then it runs once a second at most.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;

use super::rows::{Param, Row};
use crate::error::Result;
use crate::sql::Statement;
use crate::wakeups;

/// How often the check runs while notifications arrive.
const WHILE_LISTENING: Duration = Duration::from_secs(1);

/// One waiting reader.
pub struct Waiter {
    /// The store's `waiting` statement (which names its status table).
    pub statement: Statement,
    pub status_table: String,
    pub id: String,
    /// The last seq the reader has.
    pub after: i32,
    /// Woken too if the stream's count is below this (it went back: lost writes, or a
    /// new generation); 0: never.
    pub below: i32,
    pub poll_interval: Duration,
    /// Whether the reader takes other processes' writes from notifications: its store
    /// listens, and (a JS client's reader) its stream is not one written here
    /// (`written_here.rs`).
    pub listen: bool,
}

#[derive(Default)]
struct Waiters {
    next: u64,
    all: HashMap<u64, Waiter>,
    /// Whether the check task runs.
    running: bool,
}

/// The readers waiting on one pool or JS client, checked together. Cheap to clone (the
/// pool's check task holds a clone).
#[derive(Default, Clone)]
pub struct Checker {
    waiters: Arc<Mutex<Waiters>>,
}

fn lock(waiters: &Mutex<Waiters>) -> std::sync::MutexGuard<'_, Waiters> {
    waiters.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A reader's place in the check; dropping it takes the reader out.
pub struct Waiting {
    waiters: Arc<Mutex<Waiters>>,
    key: u64,
}

impl Waiting {
    /// The reader now has every chunk up to `after` (it was fed one while it waits): the
    /// stream is woken for past it, or below `below` (`Waiter::below`), and `listen` says
    /// whether it still relies on the LISTEN connection (`Waiter::listen`).
    pub fn advance(&self, after: i32, below: i32, listen: bool) {
        if let Some(waiter) = lock(&self.waiters).all.get_mut(&self.key) {
            waiter.after = after;
            waiter.below = below;
            waiter.listen = listen;
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        lock(&self.waiters).all.remove(&self.key);
    }
}

impl Checker {
    /// Readers waiting now.
    pub fn len(&self) -> usize {
        lock(&self.waiters).all.len()
    }

    /// Adds a waiting reader.
    pub fn add(&self, waiter: Waiter) -> Waiting {
        let mut waiters = lock(&self.waiters);
        waiters.next += 1;
        let key = waiters.next;
        waiters.all.insert(key, waiter);
        Waiting {
            waiters: self.waiters.clone(),
            key,
        }
    }

    /// Whether a waiting reader relies on the LISTEN connection (`Waiter::listen`).
    pub fn any_listens(&self) -> bool {
        lock(&self.waiters).all.values().any(|waiter| waiter.listen)
    }

    /// Whether the caller is to start the check task (`pool/mod.rs`): true unless it
    /// runs; it runs until `next_tick` finds no reader waiting.
    pub fn start_task(&self) -> bool {
        !std::mem::replace(&mut lock(&self.waiters).running, true)
    }

    /// For the check task: how long until the next check, or `None` (and the task ends)
    /// when no reader waits.
    pub fn next_tick(&self, heard: bool) -> Option<Duration> {
        let mut waiters = lock(&self.waiters);
        let tick = tick(&waiters, heard);
        if tick.is_none() {
            waiters.running = false;
        }
        tick
    }

    /// How long until the next check: `None` while no reader waits.
    pub fn tick(&self, heard: bool) -> Option<Duration> {
        tick(&lock(&self.waiters), heard)
    }

    /// The statements of one check: per status table, its statement and parameters.
    pub fn checks(&self) -> Vec<Check> {
        checks(&lock(&self.waiters))
    }
}

fn tick(waiters: &Waiters, heard: bool) -> Option<Duration> {
    waiters
        .all
        .values()
        .map(|waiter| {
            if heard && waiter.listen {
                waiter.poll_interval.max(WHILE_LISTENING)
            } else {
                waiter.poll_interval
            }
        })
        .min()
}

/// One status table's part of a check.
pub struct Check {
    pub table: String,
    pub statement: Statement,
    pub params: Vec<Param>,
    /// The streams asked about.
    pub ids: Vec<String>,
    /// When the check was put together (before its statement went out).
    pub since: std::time::Instant,
}

impl Check {
    /// Wakes the readers of the streams the check found something for. A failed check
    /// wakes them all, unless the database is only away or slow (then it runs again
    /// next tick): they then look for themselves and see the error.
    pub fn wake(&self, rows: Result<Vec<Row>>) {
        match rows {
            Ok(rows) => {
                for mut row in rows {
                    if let Some(id) = row.take_text(0) {
                        crate::written_here::elsewhere(&self.table, &id, self.since);
                        wakeups::wake(&self.table, &id);
                    }
                }
            }
            Err(err) if err.retryable() => {}
            Err(_) => {
                for id in &self.ids {
                    wakeups::wake(&self.table, id);
                }
            }
        }
    }
}

fn checks(waiters: &Waiters) -> Vec<Check> {
    // Per status table: its statement, and each stream's lowest cursor (and highest
    // count below which a reader would see it went back).
    type Streams = HashMap<String, (i32, i32)>;
    let mut tables: BTreeMap<String, (Statement, Streams)> = BTreeMap::new();
    for waiter in waiters.all.values() {
        let (_, streams) = tables
            .entry(waiter.status_table.clone())
            .or_insert_with(|| (waiter.statement.clone(), HashMap::new()));
        let (after, below) = streams
            .entry(waiter.id.clone())
            .or_insert((waiter.after, waiter.below));
        *after = (*after).min(waiter.after);
        *below = (*below).max(waiter.below);
    }
    tables
        .into_iter()
        .map(|(table, (statement, streams))| {
            let list: Vec<_> = streams
                .iter()
                .map(|(id, (after, below))| json!({ "id": id, "after": after, "below": below }))
                .collect();
            Check {
                table,
                statement,
                params: vec![Param::Text(serde_json::Value::from(list).to_string())],
                ids: streams.into_keys().collect(),
                since: std::time::Instant::now(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::StreamSql;

    fn waiter(table: &str, id: &str, after: i32, poll_ms: u64, listen: bool) -> Waiter {
        Waiter {
            statement: StreamSql::new("c", table, false, "o").waiting,
            status_table: table.into(),
            id: id.into(),
            after,
            below: 0,
            poll_interval: Duration::from_millis(poll_ms),
            listen,
        }
    }

    #[test]
    fn one_statement_per_table_with_each_streams_lowest_cursor() {
        let checker = Checker::default();
        let _a = checker.add(waiter("s1", "x", 5, 100, false));
        let _b = checker.add(waiter("s1", "x", 3, 100, false));
        let _c = checker.add(waiter("s1", "y", 9, 100, false));
        let _d = checker.add(waiter("s2", "x", 1, 100, false));
        let checks = checker.checks();
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].table, "s1");
        let Param::Text(json) = &checks[0].params[0] else {
            panic!("a JSON text parameter");
        };
        let mut asked: Vec<(String, i64)> = serde_json::from_str::<Vec<serde_json::Value>>(json)
            .unwrap()
            .into_iter()
            .map(|w| {
                (
                    w["id"].as_str().unwrap().into(),
                    w["after"].as_i64().unwrap(),
                )
            })
            .collect();
        asked.sort();
        assert_eq!(asked, [("x".into(), 3), ("y".into(), 9)]);
        let mut ids = checks[0].ids.clone();
        ids.sort();
        assert_eq!(ids, ["x", "y"]);
        assert!(checks[1].statement.text.contains("LEFT JOIN s2 "));
    }

    #[test]
    fn the_tick_is_the_shortest_poll_slowed_while_notifications_arrive() {
        let checker = Checker::default();
        assert_eq!(checker.tick(false), None, "no reader waits");
        let a = checker.add(waiter("s", "a", 0, 300, true));
        let _b = checker.add(waiter("s", "b", 0, 2000, true));
        assert_eq!(checker.tick(false), Some(Duration::from_millis(300)));
        assert_eq!(checker.tick(true), Some(WHILE_LISTENING));
        // A reader that does not listen keeps its own pace.
        let _c = checker.add(waiter("s", "c", 0, 500, false));
        assert_eq!(checker.tick(true), Some(Duration::from_millis(500)));
        drop(a);
        assert_eq!(checker.len(), 2);
    }

    #[test]
    fn the_task_runs_while_readers_wait_and_starts_again_after() {
        let checker = Checker::default();
        let waiting = checker.add(waiter("s", "a", 0, 100, false));
        assert!(checker.start_task());
        assert!(!checker.start_task(), "it runs already");
        assert_eq!(checker.next_tick(false), Some(Duration::from_millis(100)));
        drop(waiting);
        assert_eq!(checker.len(), 0);
        assert_eq!(checker.next_tick(false), None, "the task ends");
        let _again = checker.add(waiter("s", "a", 0, 100, false));
        assert!(checker.start_task(), "a new one starts");
    }
}
