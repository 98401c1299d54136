//! What this process knows of a stream against a read replica's view of it
//! (`reader/replica.rs`): may a replica that shows it finished be read?

use super::{Source, Tail};

impl Tail {
    /// Whether a replica that shows the stream finished with `total` chunks may serve a
    /// reader of `source`: nothing this process learned says otherwise. A finish known
    /// here must have that count; chunks or a fetch of the stream known here without a
    /// finish (it is active, perhaps a later generation), or a write whose text is not
    /// here (a stream made anew here, a wake-up), send the reader to the primary.
    pub fn replica_may_serve(&self, source: Source, total: i64) -> bool {
        if self.source == source {
            if let Some((finished, _)) = self.finished {
                return finished == total;
            }
            if !self.chunks.is_empty() || self.checked.is_some() {
                return false;
            }
        }
        self.unknown == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Tail;

    #[test]
    fn a_replica_is_read_only_where_nothing_known_here_says_otherwise() {
        let mut tail = Tail::default();
        assert!(tail.replica_may_serve(7, 3), "nothing known");
        tail.appended(7, 1, Arc::from("a"));
        assert!(!tail.replica_may_serve(7, 3), "active here");
        tail.finished(7, 4);
        assert!(tail.replica_may_serve(7, 4));
        assert!(
            !tail.replica_may_serve(7, 3),
            "the replica is behind the finish"
        );
        tail.created();
        assert!(!tail.replica_may_serve(7, 4), "made anew here");
        let mut other = Tail::default();
        other.unknown();
        assert!(
            !other.replica_may_serve(7, 4),
            "a write whose text is not here"
        );
    }
}
