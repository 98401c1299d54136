use super::*;

fn chunks(look: Look) -> Vec<u32> {
    match look {
        Look::Chunks { chunks, .. } => chunks.into_iter().map(|(seq, _)| seq).collect(),
        other => panic!("expected chunks, got {other:?}"),
    }
}

#[test]
fn a_reader_at_the_end_takes_appended_chunks_without_a_query() {
    let mut tail = Tail::default();
    let since = match tail.look(1, 0, &mut { 0 }, &mut { true }, false) {
        Look::Query { since } => since,
        other => panic!("{other:?}"),
    };
    tail.fetched(1, 0, since, &[], 0, true);
    assert_eq!(
        tail.look(1, 0, &mut { since }, &mut { false }, false),
        Look::Nothing
    );
    tail.appended(1, 1, "a".into());
    tail.appended(1, 2, "b".into());
    assert_eq!(
        chunks(tail.look(1, 0, &mut { since }, &mut { false }, false)),
        vec![1, 2]
    );
    assert_eq!(
        tail.look(1, 2, &mut { since }, &mut { false }, false),
        Look::Nothing
    );
}

#[test]
fn chunks_from_before_the_readers_query_are_not_taken() {
    let mut tail = Tail::default();
    tail.appended(1, 1, "old".into());
    let since = tail.version();
    // The reader's query saw seq 1 (or a stream made anew at 0): what was here
    // before is not news.
    assert_eq!(
        tail.look(1, 0, &mut { since }, &mut { false }, false),
        Look::Nothing
    );
}

#[test]
fn a_gap_sends_the_reader_to_the_database() {
    let mut tail = Tail::default();
    tail.appended(1, 5, "e".into());
    assert!(matches!(
        tail.look(1, 2, &mut { 0 }, &mut { false }, false),
        Look::Query { .. }
    ));
}

#[test]
fn readers_at_one_cursor_share_one_fetch() {
    let mut tail = Tail::default();
    tail.unknown();
    let Look::Query { since } = tail.look(1, 3, &mut { 0 }, &mut { false }, false) else {
        panic!()
    };
    assert_eq!(
        tail.look(1, 3, &mut { 0 }, &mut { false }, false),
        Look::Wait
    );
    // A reader that must read for itself (its first page) waits only for a fetch that
    // began after its stamp.
    assert!(matches!(
        tail.look(1, 3, &mut { since + 1 }, &mut { true }, false),
        Look::Query { .. }
    ));
    assert_eq!(
        tail.look(1, 3, &mut { since }, &mut { true }, true),
        Look::Wait
    );
    tail.fetched(1, 3, since, &[(4, "d"), (5, "e")], 5, true);
    assert_eq!(
        chunks(tail.look(1, 3, &mut { 0 }, &mut { false }, false)),
        vec![4, 5]
    );
    // At the end now, and the unknown write was covered by the fetch.
    assert_eq!(
        tail.look(1, 5, &mut { 0 }, &mut { false }, false),
        Look::Nothing
    );
    // A fetch that found nothing new covers the readers at its cursor too.
    tail.unknown();
    let Look::Query { since } = tail.look(1, 5, &mut { 0 }, &mut { false }, false) else {
        panic!()
    };
    assert_eq!(
        tail.look(1, 5, &mut { 0 }, &mut { false }, false),
        Look::Wait
    );
    tail.fetched(1, 5, since, &[], 5, true);
    assert_eq!(
        tail.look(1, 5, &mut { 0 }, &mut { false }, false),
        Look::Nothing
    );
}

#[test]
fn a_failed_fetch_lets_its_waiters_query() {
    let mut tail = Tail::default();
    tail.unknown();
    let Look::Query { since } = tail.look(1, 0, &mut { 0 }, &mut { false }, false) else {
        panic!()
    };
    assert_eq!(
        tail.look(1, 0, &mut { 0 }, &mut { false }, false),
        Look::Wait
    );
    tail.fetch_failed(0, since);
    assert!(matches!(
        tail.look(1, 0, &mut { 0 }, &mut { false }, false),
        Look::Query { .. }
    ));
}

#[test]
fn a_finish_at_the_cursor_ends_the_reader() {
    let mut tail = Tail::default();
    tail.appended(1, 1, "a".into());
    tail.finished(1, 1);
    match tail.look(1, 0, &mut { 0 }, &mut { false }, false) {
        Look::Chunks { end, .. } => assert!(end),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        tail.look(1, 1, &mut { 0 }, &mut { false }, false),
        Look::Finished
    );
    // A reader behind what is kept still reads the database.
    let mut far = Tail::default();
    far.finished(1, 10);
    assert!(matches!(
        far.look(1, 3, &mut { 0 }, &mut { false }, false),
        Look::Query { .. }
    ));
}

#[test]
fn another_databases_chunks_are_never_taken() {
    let mut tail = Tail::default();
    tail.appended(1, 1, "mine".into());
    tail.appended(2, 2, "theirs".into());
    // Source 1's reader at 1 must look in its own database; source 2's takes it.
    assert!(matches!(
        tail.look(1, 1, &mut { 0 }, &mut { false }, false),
        Look::Query { .. }
    ));
    assert_eq!(
        chunks(tail.look(2, 1, &mut { 0 }, &mut { false }, false)),
        vec![2]
    );
}

#[test]
fn a_stream_made_anew_is_not_mistaken_for_the_old_one() {
    let mut tail = Tail::default();
    tail.appended(1, 1, "old".into());
    tail.appended(1, 2, "old".into());
    // Another process re-created the stream: its seq 1 differs.
    tail.appended(1, 1, "new".into());
    assert!(matches!(
        tail.look(1, 2, &mut { 0 }, &mut { false }, false),
        Look::Query { .. }
    ));
    assert_eq!(
        chunks(tail.look(1, 0, &mut { 0 }, &mut { false }, false)),
        vec![1]
    );
    let mut made = Tail::default();
    made.appended(1, 1, "old".into());
    made.created();
    assert!(matches!(
        made.look(1, 0, &mut { 0 }, &mut { false }, false),
        Look::Query { .. }
    ));
}

#[test]
fn a_reader_of_another_database_looks_at_every_change() {
    let mut tail = Tail::default();
    tail.appended(2, 1, "theirs".into());
    let since = tail.version();
    assert_eq!(
        tail.look(1, 0, &mut { since }, &mut { false }, false),
        Look::Nothing
    );
    tail.appended(2, 2, "theirs".into());
    assert!(matches!(
        tail.look(1, 0, &mut { since }, &mut { false }, false),
        Look::Query { .. }
    ));
}

#[test]
fn a_fetch_fills_the_gap_before_what_was_announced() {
    let mut tail = Tail::default();
    let Look::Query { since } = tail.look(1, 0, &mut { 0 }, &mut { true }, false) else {
        panic!()
    };
    tail.fetched(1, 0, since, &[], 0, true);
    tail.appended(1, 1, "a".into());
    // Chunk 2 was announced without its text: chunk 3 cannot follow 1.
    tail.unknown();
    tail.appended(1, 3, "c".into());
    let Look::Query { since: fetching } = tail.look(1, 1, &mut { since }, &mut { false }, false)
    else {
        panic!()
    };
    assert_eq!(
        tail.look(1, 1, &mut { since }, &mut { false }, false),
        Look::Wait
    );
    tail.fetched(1, 1, fetching, &[(2, "b"), (3, "c")], 3, true);
    tail.appended(1, 4, "d".into());
    assert_eq!(
        chunks(tail.look(1, 1, &mut { since }, &mut { false }, false)),
        vec![2, 3, 4]
    );
}

#[test]
fn readers_starting_together_share_their_first_read() {
    let mut tail = Tail::default();
    let stamp = tail.version();
    let Look::Query { since } = tail.look(1, 0, &mut { stamp }, &mut { true }, true) else {
        panic!()
    };
    let (mut other, mut must) = (stamp, true);
    assert_eq!(tail.look(1, 0, &mut other, &mut must, true), Look::Wait);
    tail.fetched(1, 0, since, &[], 0, true);
    // The fetch found the stream empty and began when the other reader came: it
    // counts as that reader's first look.
    assert_eq!(tail.look(1, 0, &mut other, &mut must, true), Look::Nothing);
    assert!(!must);
    // A reader that came after the fetch began still reads for itself.
    tail.unknown();
    let late = tail.version();
    let mut late_must = true;
    assert!(matches!(
        tail.look(1, 0, &mut { late }, &mut late_must, true),
        Look::Query { .. }
    ));
    assert!(late_must);
}

#[test]
fn a_poll_is_not_answered_by_the_readers_own_last_fetch() {
    let mut tail = Tail::default();
    let Look::Query { since } = tail.look(1, 0, &mut 0, &mut true, true) else {
        panic!()
    };
    tail.fetched(1, 0, since, &[], 0, true);
    // The poll comes due: the reader's stamp is its own fetch's start.
    let mut must = true;
    assert!(matches!(
        tail.look(1, 0, &mut { since }, &mut must, false),
        Look::Query { .. }
    ));
    assert!(must);
}

#[test]
fn memory_is_bounded_and_a_reader_behind_it_queries() {
    let mut tail = Tail::default();
    for seq in 1..=5000 {
        tail.appended(1, seq, "x".into());
    }
    assert!(tail.chunks.len() <= MOST_CHUNKS);
    assert!(matches!(
        tail.look(1, 10, &mut { 0 }, &mut { false }, false),
        Look::Query { .. }
    ));
    assert_eq!(
        chunks(tail.look(1, 4998, &mut { 0 }, &mut { false }, false)),
        vec![4999, 5000]
    );
    tail.appended(1, 5001, "y".repeat(LARGEST_KEPT + 1).into());
    assert!(matches!(
        tail.look(1, 5000, &mut { 0 }, &mut { false }, false),
        Look::Query { .. }
    ));
}

#[test]
fn a_page_that_does_not_reach_the_end_is_not_kept() {
    let mut tail = Tail::default();
    let Look::Query { since } = tail.look(1, 0, &mut { 0 }, &mut { true }, false) else {
        panic!()
    };
    tail.fetched(1, 0, since, &[(1, "a")], 3, true);
    assert!(matches!(
        tail.look(1, 1, &mut { since }, &mut { true }, false),
        Look::Query { .. }
    ));
}

#[test]
fn a_finish_learned_during_a_fetch_survives_its_page() {
    let mut tail = Tail::default();
    let since = match tail.look(1, 0, &mut { 0 }, &mut { true }, false) {
        Look::Query { since } => since,
        other => panic!("{other:?}"),
    };
    // The page is in flight when the stream finishes with the two chunks it holds.
    tail.finished(1, 2);
    // The page was read before the finish: the stream still active then.
    tail.fetched(1, 0, since, &[(1, "a"), (2, "b")], 2, true);
    assert_eq!(
        tail.look(1, 2, &mut { since }, &mut { false }, false),
        Look::Finished,
        "the reader ends without waiting for a poll"
    );
}

#[test]
fn a_chunk_overtaken_by_the_finish_keeps_the_finish() {
    let mut tail = Tail::default();
    // The finish's NOTIFY (sent inside its statement) arrives before the one announcing
    // the last chunk (sent after the append's commit).
    tail.finished(1, 1);
    tail.appended(1, 1, "a".into());
    match tail.look(1, 0, &mut { 0 }, &mut { false }, false) {
        Look::Chunks { chunks, end, .. } => {
            assert_eq!(chunks.len(), 1);
            assert!(end, "the page says the stream ended with it");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_chunk_past_the_finish_forgets_it() {
    let mut tail = Tail::default();
    tail.finished(1, 1);
    // A later generation of the stream (made anew elsewhere): the old finish is void.
    tail.appended(1, 3, "c".into());
    assert!(matches!(
        tail.look(1, 1, &mut { 0 }, &mut { false }, false),
        Look::Query { .. }
    ));
}

#[test]
fn a_reader_of_another_source_is_not_sent_back_by_its_own_fetch() {
    // Written through source 1, read through source 2 (two pools of one process).
    let mut tail = Tail::default();
    tail.appended(1, 1, "a".into());
    let mut since = 0;
    let started = match tail.look(2, 0, &mut since, &mut { false }, false) {
        Look::Query { since } => since,
        other => panic!("a write is news: {other:?}"),
    };
    tail.fetched(2, 0, started, &[(1, "a")], 1, true);
    assert_eq!(
        tail.look(2, 1, &mut { started }, &mut { false }, false),
        Look::Nothing,
        "its own page is no news: it waits"
    );
    tail.appended(1, 2, "b".into());
    assert!(matches!(
        tail.look(2, 1, &mut { started }, &mut { false }, false),
        Look::Query { .. }
    ));
}
