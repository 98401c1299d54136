//! What this process knows of a stream against a read replica's view of it
//! (`reader/replica.rs`): may a replica that shows it finished be read?

use super::{Source, Tail};

impl Tail {
    /// Whether a replica that shows the stream finished with `total` chunks may serve a
    /// reader of `source`: nothing this process learned says otherwise. Of the reader's
    /// own source: a finish known here must have that count; chunks or a fetch that
    /// found its end, without a finish, say it is active (perhaps a later generation). (A
    /// wake-up without text is not counted: a fetch that failed stamps one too.) News of
    /// another source (another client object, perhaps another
    /// database) says nothing of this one, but `made_anew` (a `create` of the stream in
    /// this process since its last finish was heard) holds for every source.
    pub fn replica_may_serve(&self, source: Source, total: i64, made_anew: bool) -> bool {
        if made_anew {
            return false;
        }
        if self.source != source {
            return true;
        }
        match self.finished {
            Some((finished, _)) => finished == total,
            None => self.chunks.is_empty() && self.checked.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Tail;

    #[test]
    fn a_replica_is_read_only_where_nothing_known_here_says_otherwise() {
        let mut tail = Tail::default();
        tail.appended(7, 1, Arc::from("a"));
        assert!(!tail.replica_may_serve(7, 3, false), "active here");
        assert!(tail.replica_may_serve(8, 3, false), "another source's news");
        assert!(!tail.replica_may_serve(8, 3, true), "made anew here");
        tail.finished(7, 4);
        assert!(tail.replica_may_serve(7, 4, false));
        assert!(!tail.replica_may_serve(7, 3, false), "behind the finish");
        tail.created();
        assert!(
            !tail.replica_may_serve(7, 4, true),
            "made anew here (its hub says)"
        );
        let mut other = Tail::default();
        assert!(other.replica_may_serve(0, 3, false), "nothing known");
        other.unknown();
        assert!(
            other.replica_may_serve(0, 4, false),
            "a wake-up (or a failed fetch)"
        );
    }
}
