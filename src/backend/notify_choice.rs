//! Where a durable append announces its chunk to other processes: inside its own
//! transaction, or after it, in a transaction of the notifier's.
//!
//! Inside saves a transaction per chunk (one round trip instead of two), which is what a
//! single fast producer wants. But PostgreSQL holds its NOTIFY lock from a notifying
//! transaction's commit until the commit's WAL flush is done, so concurrent producers
//! that notify inside wait for each other's flushes one after the other, where otherwise
//! their commits would share a flush (measured here: 8 stores appending at once made
//! 3-4x fewer appends a second inside than after).
//!
//! The Rust pool's append lane chooses per store (`pool/combine/`); so does a store on a
//! JS client, for an append made while none of its others is in flight
//! (`stream_store.rs`).
//!
//! Whether anyone else is committing a NOTIFY is not visible from here, but its effect is:
//! the append's own latency. So the lane measures. Every `EPOCH` lane appends begin
//! with `TRIAL` appends announced after and `TRIAL` announced inside; the rest of the
//! epoch goes inside unless its median latency was `INSIDE_SLACK` times the other's or
//! more: the signature of commits queued behind other producers' flushes. A smaller
//! difference is noise, or the notifier's work, which the latency after does not show.

/// Lane appends per epoch.
const EPOCH: u32 = 256;
/// Appends measured each way at the start of an epoch.
const TRIAL: usize = 8;
/// Inside wins while its median latency is less than this many times the other's.
const INSIDE_SLACK: f64 = 2.0;

/// How one lane append goes: `inside` or not, and the trial slot it measures, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    pub inside: bool,
    slot: Option<usize>,
}

/// The lane's choice and the measures it is made from (one per store's append lane).
#[derive(Debug, Default)]
pub struct NotifyChoice {
    picks: u32,
    /// Latencies (microseconds) of this epoch's trial appends, after and inside.
    after: Vec<u64>,
    inside: Vec<u64>,
    /// The way the last epoch's trials chose (`false`, after, until one has been run).
    prefer_inside: bool,
}

impl NotifyChoice {
    /// How the next lane append goes.
    pub fn pick(&mut self) -> Pick {
        let at = (self.picks % EPOCH) as usize;
        self.picks = self.picks.wrapping_add(1);
        if at == 0 {
            self.after.clear();
            self.inside.clear();
        }
        if at < TRIAL {
            return Pick {
                inside: false,
                slot: Some(at),
            };
        }
        if at < 2 * TRIAL {
            return Pick {
                inside: true,
                slot: Some(at),
            };
        }
        if at == 2 * TRIAL {
            self.decide();
        }
        Pick {
            inside: self.prefer_inside,
            slot: None,
        }
    }

    /// A lane append stored its chunk in `micros`.
    pub fn record(&mut self, pick: Pick, micros: u64) {
        if pick.slot.is_none() {
            return;
        }
        let trials = if pick.inside {
            &mut self.inside
        } else {
            &mut self.after
        };
        if trials.len() < TRIAL {
            trials.push(micros);
        }
    }

    /// Chooses from this epoch's trials; too few of either (calls that failed, or are
    /// still running) keep the last choice.
    fn decide(&mut self) {
        if self.after.len() < TRIAL / 2 || self.inside.len() < TRIAL / 2 {
            return;
        }
        let (after, inside) = (median(&mut self.after), median(&mut self.inside));
        self.prefer_inside = (inside as f64) < after as f64 * INSIDE_SLACK;
    }

    /// Whether lane appends now go inside (outside the trials).
    #[cfg(test)]
    pub fn prefers_inside(&self) -> bool {
        self.prefer_inside
    }
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one epoch where appends take `after` / `inside` microseconds; the picks.
    fn epoch(choice: &mut NotifyChoice, after: u64, inside: u64) -> Vec<bool> {
        (0..EPOCH)
            .map(|_| {
                let pick = choice.pick();
                choice.record(pick, if pick.inside { inside } else { after });
                pick.inside
            })
            .collect()
    }

    #[test]
    fn each_epoch_tries_both_ways_then_takes_the_faster() {
        let mut choice = NotifyChoice::default();
        let picks = epoch(&mut choice, 400, 300);
        assert!(picks[..TRIAL].iter().all(|inside| !inside));
        assert!(picks[TRIAL..2 * TRIAL].iter().all(|inside| *inside));
        assert!(
            picks[2 * TRIAL..].iter().all(|inside| *inside),
            "inside won"
        );
        // The NOTIFY lock queues this store behind others' flushes: back to after.
        let picks = epoch(&mut choice, 400, 1_600);
        assert!(picks[2 * TRIAL..].iter().all(|inside| !inside));
        assert!(!choice.prefers_inside());
    }

    #[test]
    fn inside_wins_a_near_tie_it_saves_a_transaction_the_latency_does_not_show() {
        let mut choice = NotifyChoice::default();
        epoch(&mut choice, 400, 790);
        assert!(choice.prefers_inside());
        epoch(&mut choice, 400, 810);
        assert!(!choice.prefers_inside());
    }

    #[test]
    fn too_few_measures_keep_the_last_choice() {
        let mut choice = NotifyChoice::default();
        epoch(&mut choice, 400, 300);
        // An epoch whose inside trials all failed (nothing recorded).
        for _ in 0..EPOCH {
            let pick = choice.pick();
            if !pick.inside {
                choice.record(pick, 100);
            }
        }
        assert!(choice.prefers_inside());
    }
}
