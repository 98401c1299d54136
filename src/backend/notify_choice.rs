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
//! (`stream_store.rs`, and `sent_appends.rs` for the appends JS sends itself, which make
//! the picks past an epoch's trials on a lease: `lease`, `skip`).
//!
//! Whether anyone else is committing a NOTIFY is not visible from here, but its effect is:
//! the append's own latency. So the lane measures. Every epoch of lane appends begins
//! with `TRIAL` appends announced after and `TRIAL` announced inside; the rest of the
//! epoch goes inside unless its median latency was `INSIDE_SLACK` times the other's or
//! more: the signature of commits queued behind other producers' flushes. A smaller
//! difference is noise, or the notifier's work, which the latency after does not show.
//!
//! The trials cost: while inside is chosen, each append tried after is a transaction more
//! (`TRIAL` in `EPOCH` is about 0.03 a chunk). So an epoch whose trials confirm the last
//! choice clearly (the same way, its ratio not within `CLOSE` of the line) doubles the
//! epoch, up to `LONGEST_EPOCH` appends (0.002 a chunk); a choice that flips, a close
//! call, or trials too few to choose from (failed calls) go back to `EPOCH`, so a change
//! (another producer starting) is looked at again soon. The longest epoch bounds how long
//! a store stays inside after others start queueing behind it: 4,096 lane appends (four
//! seconds at a thousand a second).

/// Lane appends in the shortest epoch, the first and each after a change.
const EPOCH: u32 = 256;
/// The longest epoch, reached by doubling while the trials confirm the choice.
const LONGEST_EPOCH: u32 = 4096;
/// Appends measured each way at the start of an epoch.
const TRIAL: usize = 8;
/// Inside wins while its median latency is less than this many times the other's.
const INSIDE_SLACK: f64 = 2.0;
/// A ratio within this factor of `INSIDE_SLACK` is a close call: it chooses, but does
/// not lengthen the epoch.
const CLOSE: f64 = 1.25;

/// How one lane append goes: `inside` or not, and the trial slot it measures, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    pub inside: bool,
    slot: Option<usize>,
}

impl Pick {
    /// Whether it is one of an epoch's trial appends.
    pub fn is_trial(&self) -> bool {
        self.slot.is_some()
    }
}

/// The lane's choice and the measures it is made from (one per store's append lane).
#[derive(Debug)]
pub struct NotifyChoice {
    /// Lane appends picked in this epoch.
    at: u32,
    /// This epoch's length: `EPOCH`, doubled by each epoch that confirms the choice.
    epoch: u32,
    /// Latencies (microseconds) of this epoch's trial appends, after and inside.
    after: Vec<u64>,
    inside: Vec<u64>,
    /// The way the last epoch's trials chose (`false`, after, until one has been run).
    prefer_inside: bool,
    /// Whether any epoch's trials have chosen yet.
    chosen: bool,
}

impl Default for NotifyChoice {
    fn default() -> Self {
        NotifyChoice {
            at: 0,
            epoch: EPOCH,
            after: Vec::new(),
            inside: Vec::new(),
            prefer_inside: false,
            chosen: false,
        }
    }
}

impl NotifyChoice {
    /// How the next lane append goes.
    pub fn pick(&mut self) -> Pick {
        if self.at >= self.epoch {
            self.at = 0;
        }
        let at = self.at as usize;
        self.at += 1;
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

    /// Chooses from this epoch's trials, and how long this epoch runs: twice the last
    /// if they clearly confirm the choice, else `EPOCH`. Too few of either (calls that
    /// failed, or are still running) keep the last choice.
    fn decide(&mut self) {
        if self.after.len() < TRIAL / 2 || self.inside.len() < TRIAL / 2 {
            self.epoch = EPOCH;
            return;
        }
        let (after, inside) = (median(&mut self.after), median(&mut self.inside));
        let ratio = inside as f64 / (after as f64).max(1.0);
        let prefer_inside = ratio < INSIDE_SLACK;
        let close = ratio > INSIDE_SLACK / CLOSE && ratio < INSIDE_SLACK * CLOSE;
        let confirmed = self.chosen && prefer_inside == self.prefer_inside && !close;
        self.epoch = if confirmed {
            (self.epoch * 2).min(LONGEST_EPOCH)
        } else {
            EPOCH
        };
        self.prefer_inside = prefer_inside;
        self.chosen = true;
    }

    /// How many of this epoch's picks are left after the last one, when all of them go
    /// the same way (`prefer_inside`, no trial among them): 0 during the trials. A JS
    /// client's store makes that many lone appends without asking (`appendBegin`), then
    /// reports them (`skip`).
    pub fn lease(&self) -> u32 {
        if (self.at as usize) <= 2 * TRIAL {
            return 0;
        }
        self.epoch.saturating_sub(self.at)
    }

    /// `used` picks of a lease were made: they count toward the epoch as picks do.
    pub fn skip(&mut self, used: u32) {
        self.at = self.at.saturating_add(used).min(self.epoch);
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

    /// Runs one epoch (the rest of the one begun) where appends take `after` / `inside`
    /// microseconds; the picks.
    fn epoch(choice: &mut NotifyChoice, after: u64, inside: u64) -> Vec<bool> {
        let mut picks = Vec::new();
        loop {
            let pick = choice.pick();
            choice.record(pick, if pick.inside { inside } else { after });
            picks.push(pick.inside);
            if choice.at >= choice.epoch {
                return picks;
            }
        }
    }

    #[test]
    fn a_lease_covers_the_rest_of_an_epoch_past_its_trials_and_its_use_counts() {
        let mut choice = NotifyChoice::default();
        for _ in 0..2 * TRIAL {
            let pick = choice.pick();
            choice.record(pick, if pick.inside { 300 } else { 400 });
            assert_eq!(choice.lease(), 0, "no lease during the trials");
        }
        let pick = choice.pick();
        assert!(pick.inside && pick.slot.is_none());
        let lease = choice.lease();
        assert_eq!(lease, EPOCH - 2 * TRIAL as u32 - 1);
        // The lease used up: the next pick starts a new epoch with its trials.
        choice.skip(lease);
        let pick = choice.pick();
        assert_eq!(pick.slot, Some(0));
        assert!(!pick.inside);
        // A report beyond the epoch ends it, no more.
        choice.skip(10_000);
        assert_eq!(choice.pick().slot, Some(0));
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

    #[test]
    fn epochs_lengthen_while_the_trials_confirm_the_choice() {
        let mut choice = NotifyChoice::default();
        let lengths: Vec<usize> = (0..7).map(|_| epoch(&mut choice, 400, 300).len()).collect();
        // The first choice confirms nothing; then each epoch whose trials confirm it runs
        // twice the last one, up to the longest.
        assert_eq!(lengths, [256, 512, 1024, 2048, 4096, 4096, 4096]);
        // A long epoch still begins with its trials.
        let picks = epoch(&mut choice, 400, 300);
        assert!(picks[..TRIAL].iter().all(|inside| !inside));
        assert!(picks[TRIAL..].iter().all(|inside| *inside));
    }

    #[test]
    fn a_flip_goes_back_to_short_epochs() {
        let mut choice = NotifyChoice::default();
        for _ in 0..6 {
            epoch(&mut choice, 400, 300);
        }
        assert_eq!(choice.epoch, LONGEST_EPOCH);
        // Another producer starts: inside now queues behind its flushes.
        let picks = epoch(&mut choice, 400, 1_600);
        assert_eq!(picks.len(), EPOCH as usize);
        assert!(!choice.prefers_inside());
        assert_eq!(
            epoch(&mut choice, 400, 1_600).len(),
            512,
            "after, confirmed"
        );
        // It stops: inside again, looked at again soon.
        assert_eq!(epoch(&mut choice, 400, 300).len(), EPOCH as usize);
        assert!(choice.prefers_inside());
    }

    #[test]
    fn close_calls_and_too_few_measures_keep_epochs_short() {
        let mut choice = NotifyChoice::default();
        // 1.9x: inside, but near the line.
        for _ in 0..4 {
            assert_eq!(epoch(&mut choice, 400, 760).len(), EPOCH as usize);
            assert!(choice.prefers_inside());
        }
        for _ in 0..2 {
            epoch(&mut choice, 400, 300);
        }
        assert_eq!(choice.epoch, 1024);
        // An epoch whose inside trials all failed: the choice stands, the epoch is short.
        let mut picked = 0;
        while picked == 0 || choice.at < choice.epoch {
            let pick = choice.pick();
            if !pick.inside {
                choice.record(pick, 100);
            }
            picked += 1;
        }
        assert_eq!(picked, EPOCH);
        assert!(choice.prefers_inside());
    }

    #[test]
    fn the_trials_cost_is_bounded() {
        // Transactions more than inside (appends tried after) per lane append.
        let extra = |choice: &mut NotifyChoice, appends: usize, inside_micros: u64| {
            let mut after = 0;
            let mut done = 0;
            while done < appends {
                let picks = epoch(choice, 400, inside_micros);
                after += picks.iter().filter(|inside| !**inside).count();
                done += picks.len();
            }
            after as f64 / done as f64
        };
        // Stable: under one in 400 once the epochs are long (it was 1 in 32).
        let mut stable = NotifyChoice::default();
        extra(&mut stable, 10_000, 300);
        assert!(extra(&mut stable, 100_000, 300) < 0.0025);
        // Flipping every epoch: never more than before the back-off.
        let mut flipping = NotifyChoice::default();
        let mut after = 0;
        let mut done = 0;
        for i in 0..200 {
            let picks = epoch(&mut flipping, 400, if i % 2 == 0 { 300 } else { 1_600 });
            assert_eq!(picks.len(), EPOCH as usize);
            after += picks[..2 * TRIAL].iter().filter(|inside| !**inside).count();
            done += picks.len();
        }
        assert!(after as f64 / done as f64 <= TRIAL as f64 / EPOCH as f64);
    }

    #[test]
    fn a_change_is_noticed_within_the_longest_epoch() {
        for offset in [0, 17, 1_000, 4_000] {
            let mut choice = NotifyChoice::default();
            for _ in 0..6 {
                epoch(&mut choice, 400, 300);
            }
            for _ in 0..offset {
                let pick = choice.pick();
                choice.record(pick, if pick.inside { 300 } else { 400 });
            }
            // From here inside is 4x slower: appends until the lane goes after.
            let mut appends = 0;
            while choice.prefers_inside() {
                let pick = choice.pick();
                choice.record(pick, if pick.inside { 1_600 } else { 400 });
                appends += 1;
            }
            assert!(
                appends <= LONGEST_EPOCH as usize + 2 * TRIAL + 1,
                "{appends}"
            );
        }
    }
}
