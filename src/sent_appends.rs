//! A JS client's appends sent from JS (`lib/appends.cjs`): the store's first attempt at
//! an append goes out through the client's own `query` (`lib/driver.cjs`'s direct path),
//! with no crossing into Rust on its way out, and Rust hears the outcome once. A stored
//! chunk then goes into this process's tail, wakes its readers and is queued for other
//! processes exactly as `NativeStreamStore::append` does with its decoded row; a failure is
//! classified by the same code as every other statement's.
//!
//! Rust still picks the statement (announcing inside the append's transaction or after
//! it, `backend/notify_choice.rs`), so both paths share one choice. A store whose
//! statements go out in another form (Citus) sends through `append()`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use napi::bindgen_prelude::{JsValue, Unknown};
use napi::Env;
use napi_derive::napi;

use crate::backend::missing;
use crate::error::Error;
use crate::stream_shared::SentAppends;
use crate::stream_store::NativeStreamStore;

/// What JS needs to send a store's appends itself; read once per store.
#[napi(object)]
pub struct AppendStatements {
    /// The append: parameters (id, chunk, expires_at, at), rows `{ seq, notified }`.
    pub plain: String,
    /// The same, announcing its chunk inside its own transaction; none: never inside.
    pub notifying: Option<String>,
    /// `notifying` with a fifth parameter: the payloads of earlier chunks whose
    /// announcement waited (`takeNotifications`, as a JSON array), notified first in the
    /// same transaction (NULL: none).
    /// Only once the statements go out as they are for good (never on Citus).
    pub carrying: Option<String>,
    /// The store's `ttlMs`: `expires_at` is the time of the call plus this.
    pub ttl_ms: f64,
    /// Many appends in one statement (to streams whose status rows no one else holds
    /// locked): parameters (ids, chunks, expires_at's, ats) as arrays in call order, rows
    /// `{ ord, seq }` for the calls that stored their chunk (`ord` from 1). It never
    /// announces its chunks. For JS to send appends that waited for a connection together.
    pub combined: Option<String>,
}

/// The lease when no append ever announces inside (no notifying form): asked again after
/// this many (the answer stays below 2^53, a number JS holds exactly).
const LONGEST_LEASE: u32 = 1 << 16;

fn lock(sent: &Mutex<SentAppends>) -> MutexGuard<'_, SentAppends> {
    sent.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The append of `ticket` is no longer in flight (once: later calls find nothing);
/// `stored`: it stored its chunk, and its time counts toward the notify choice.
fn settled(sent: &Mutex<SentAppends>, ticket: u32, stored: bool) {
    let in_flight = lock(sent).in_flight.remove(&ticket);
    if let (Some(Some(in_flight)), true) = (&in_flight, stored) {
        in_flight.stored();
    }
}

#[napi]
impl NativeStreamStore {
    /// The statements `appendBegin` picks between.
    #[napi(getter)]
    pub fn append_statements(&self) -> AppendStatements {
        let s = self.shared();
        AppendStatements {
            plain: s.sql.append.text.to_string(),
            notifying: s.sql.append_notifying.as_ref().map(|n| n.text.to_string()),
            carrying: s.sql.append_carrying.clone(),
            ttl_ms: s.settings.ttl_ms as f64,
            combined: (s.sql.append.combined.as_ref()).map(|c| c.statement.text.to_string()),
        }
    }

    /// An append JS sends itself starts: -1 when it must go through `append()` instead
    /// (the Rust pool, or statements in their Citus form), else
    /// `((lease * 2^30) + ticket) * 4 + trial * 2 + inside`: `inside` (1) sends
    /// `appendStatements.notifying`, 0 `plain`; `trial` (1): one of the notify choice's
    /// trial appends. The ticket then goes to `appendStored` or `appendFailed`, exactly
    /// once.
    ///
    /// `lease`: how many more appends this store may make alone (none of its others in
    /// flight) the same way without asking, because the notify choice has no trial among
    /// them (`NotifyChoice::lease`); those go with ticket 2^30 (never given: settling it
    /// finds nothing) and are reported as `used` by the next call. No lease while Citus may still be found.
    ///
    /// `stored`: the ticket of an append that stored its chunk and whose `appendStored`
    /// JS has put off until its next statement is out: it stops counting as in flight
    /// here, so that this append can count as made alone.
    #[napi]
    pub fn append_begin(&self, stored: Option<u32>, used: Option<u32>) -> i64 {
        let s = self.shared();
        if let Some(stored) = stored {
            settled(&s.sent, stored, true);
        }
        s.lone.skip(used.unwrap_or(0));
        if !s.db.js_sends_as_is(&s.sql.append) {
            return -1;
        }
        let for_good = s.db.js_sends_as_is_for_good(&s.sql.append);
        let (pick, in_flight, lease) = match &s.sql.append_notifying {
            Some(_) => {
                let (pick, in_flight) = s.lone.start();
                let lease = if for_good && pick.is_some() {
                    s.lone.lease()
                } else {
                    0
                };
                (pick, Some(in_flight), lease)
            }
            // Never inside: every append alike.
            None => (None, None, if for_good { LONGEST_LEASE } else { 0 }),
        };
        let inside = pick.is_some_and(|pick| pick.inside);
        let trial = pick.is_some_and(|pick| pick.is_trial());
        let mut sent = lock(&s.sent);
        let ticket = sent.next;
        sent.next = (sent.next + 1) & 0x3fff_ffff;
        sent.in_flight.insert(ticket, in_flight);
        ((i64::from(lease) << 30) + i64::from(ticket)) * 8
            + i64::from(for_good) * 4
            + i64::from(trial) * 2
            + i64::from(inside)
    }

    /// The append of `ticket` stored `chunk` as `seq` of stream `id`; `notified`: its row
    /// said it announced the chunk itself. Returns the tokens of the waiting readers that
    /// took the chunk without being woken (`waker::feeding`; JS hands it to them), or
    /// null.
    #[napi]
    pub fn append_stored(
        &self,
        env: Env,
        ticket: u32,
        id: String,
        chunk: String,
        seq: u32,
        notified: bool,
    ) -> Option<Vec<u32>> {
        settled(&self.shared().sent, ticket, true);
        let s = self.shared();
        // On the JS thread, as a settle: the readers it wakes go from here (`waker.rs`).
        let ((), fed) = crate::waker::settling(&env, || {
            crate::waker::feeding(std::ptr::from_ref(s) as usize, || {
                s.db.appended(
                    &s.settings.wake_key,
                    &id,
                    seq,
                    Arc::from(chunk),
                    notified,
                    s.settings.notify_batch,
                )
            })
        });
        (!fed.is_empty()).then_some(fed)
    }

    /// The append of `ticket` did not store its chunk: throws the error its outcome makes,
    /// as `append()` would reject. The outcome: the driver's `{ failed }` or `{ malformed }`,
    /// or the rows when their first has no integer `seq`; none: it was refused (no row
    /// back), which JS says itself.
    #[napi]
    pub fn append_failed(
        &self,
        env: Env,
        ticket: u32,
        outcome: Option<Unknown>,
    ) -> napi::Result<()> {
        settled(&self.shared().sent, ticket, false);
        let Some(outcome) = outcome else {
            return Ok(());
        };
        let statement = &self.shared().sql.append;
        if outcome.is_array()? {
            return Err(missing(statement, 0).into());
        }
        crate::backend::read_js_outcome(&env, statement, outcome)?;
        Err(Error::MalformedResult("the append's outcome was not a failure".into()).into())
    }
}
