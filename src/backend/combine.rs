//! Appends through the Rust pool, combined when the pool is busy.
//!
//! As long as fewer appends are in flight than the pool has connections, each goes out at
//! once as its own statement. Beyond that, appends queue here, and whichever append
//! statement finishes next takes the whole queue out as one `append_many` statement: one
//! round trip and one commit for all of them. So appends from many streams never wait
//! behind one another for more than one statement, and under load the database does a
//! fraction of the work per chunk. Each stream's chunks keep their call order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use super::pool::SharedPool;
use super::Param;
use crate::error::{Error, Result};
use crate::sql::Statement;

/// Most appends in one combined statement, and about the most chunk bytes.
const MOST_APPENDS: usize = 256;
const MOST_BYTES: usize = 4 * 1024 * 1024;

/// An append's outcome: its seq, or `None` when the stream was not active.
pub type Appended = Result<Option<i32>>;

struct Queued {
    id: String,
    chunk: String,
    expires: i64,
    done: oneshot::Sender<Appended>,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    queue: Vec<Queued>,
}

pub struct Combiner {
    lanes: usize,
    state: Mutex<State>,
}

/// The two append statements of one store.
#[derive(Clone)]
pub struct AppendSql {
    pub one: Statement,
    pub many: Statement,
}

impl Combiner {
    pub fn new(lanes: usize) -> Self {
        Combiner {
            lanes: lanes.max(1),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one chunk; `expires` is the stream's new expiry. The chunk takes its place
    /// (a lane, or the queue) here, on the calling thread, so the chunks of one stream
    /// keep their call order; the returned future sends it.
    pub fn append(
        self: Arc<Self>,
        pool: Arc<SharedPool>,
        sql: AppendSql,
        id: String,
        chunk: String,
        expires: i64,
    ) -> impl std::future::Future<Output = Appended> + Send + 'static {
        let queued = {
            let mut state = self.state();
            if state.in_flight < self.lanes {
                state.in_flight += 1;
                Err((id, chunk))
            } else {
                let (done, outcome) = oneshot::channel();
                state.queue.push(Queued {
                    id,
                    chunk,
                    expires,
                    done,
                });
                Ok(outcome)
            }
        };
        async move {
            let (id, chunk) = match queued {
                Ok(outcome) => return outcome.await.unwrap_or(Err(Error::Closed)),
                Err(lane) => lane,
            };
            let params = vec![Param::Text(id), Param::Text(chunk), Param::BigInt(expires)];
            let outcome = pool
                .query(&sql.one, &params)
                .await
                .map(|rows| seq_of(&rows));
            // This lane now serves the queue, if anything waits, on a task of its own so
            // this append's caller hears back at once.
            if let Some(batch) = self.next_batch() {
                tokio::spawn(self.drain(pool, sql, batch));
            }
            outcome
        }
    }

    /// The queued appends to send next (the lane stays in flight), or `None` (the lane is
    /// given back).
    fn next_batch(&self) -> Option<Vec<Queued>> {
        let mut state = self.state();
        if state.queue.is_empty() {
            state.in_flight -= 1;
            return None;
        }
        let mut bytes = 0;
        let take = state
            .queue
            .iter()
            .take(MOST_APPENDS)
            .take_while(|q| {
                bytes += q.chunk.len() + q.id.len();
                bytes <= MOST_BYTES
            })
            .count()
            .max(1);
        Some(state.queue.drain(..take).collect())
    }

    async fn drain(self: Arc<Self>, pool: Arc<SharedPool>, sql: AppendSql, mut batch: Vec<Queued>) {
        loop {
            send_batch(&pool, &sql, batch).await;
            match self.next_batch() {
                Some(next) => batch = next,
                None => return,
            }
        }
    }
}

async fn send_batch(pool: &SharedPool, sql: &AppendSql, batch: Vec<Queued>) {
    let expires = batch.iter().map(|q| q.expires).max().unwrap_or_default();
    if batch.len() == 1 {
        let q = batch.into_iter().next().expect("one");
        let params = vec![
            Param::Text(q.id),
            Param::Text(q.chunk),
            Param::BigInt(expires),
        ];
        let outcome = pool
            .query(&sql.one, &params)
            .await
            .map(|rows| seq_of(&rows));
        let _ = q.done.send(outcome);
        return;
    }
    let (mut ids, mut chunks, mut waiters) = (Vec::new(), Vec::new(), Vec::new());
    for q in batch {
        ids.push(q.id);
        chunks.push(q.chunk);
        waiters.push(q.done);
    }
    let params = vec![
        Param::TextArray(ids),
        Param::TextArray(chunks),
        Param::BigInt(expires),
    ];
    match pool.query(&sql.many, &params).await {
        Ok(rows) => {
            let seqs: HashMap<i64, i64> = rows
                .iter()
                .filter_map(|row| Some((row.int(0)?, row.int(1)?)))
                .collect();
            for (n, done) in waiters.into_iter().enumerate() {
                let seq = seqs.get(&(n as i64 + 1)).map(|&seq| seq as i32);
                let _ = done.send(Ok(seq));
            }
        }
        Err(err) => {
            for done in waiters {
                let _ = done.send(Err(err.clone()));
            }
        }
    }
}

fn seq_of(rows: &[super::Row]) -> Option<i32> {
    rows.first()
        .and_then(|row| row.int(0))
        .map(|seq| seq as i32)
}
