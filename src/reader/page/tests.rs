use super::*;
use crate::backend::Cell;
use crate::sql::StreamSql;

fn sql() -> Statement {
    StreamSql::new("chunks", "status", false, "o").read_page
}

/// The status row: no seq, its data "<state> <total_chunks>".
fn status(state: &str, total: i64) -> Row {
    Row(vec![Cell::Null, Cell::Text(format!("{state} {total}"))])
}

fn chunk(seq: i64, data: &str) -> Row {
    Row(vec![Cell::Int(seq), Cell::Text(data.into())])
}

/// A chunk over `SMALL_CHUNK_BYTES`, sent without its text.
fn large(seq: i64) -> Row {
    Row(vec![Cell::Int(seq), Cell::Null])
}

fn at(after: i32) -> Cursor {
    Cursor {
        after,
        ..Cursor::default()
    }
}

fn page(cursor: &mut Cursor, rows: &[Row]) -> Option<Page> {
    cursor.take_page(&sql(), rows, false).unwrap().page
}

/// `page`, where a local `page` hides it.
fn page_of(cursor: &mut Cursor, rows: &[Row]) -> Option<Page> {
    page(cursor, rows)
}

#[test]
fn a_page_joins_the_texts_and_moves_the_cursor() {
    let mut cursor = at(0);
    assert!(cursor.fresh && cursor.must_look);
    assert_eq!(cursor.next_range(), (PAGE_ROWS, SMALL_CHUNK_BYTES));
    let rows = [
        status("active", 5),
        chunk(1, "ab"),
        chunk(2, ""),
        chunk(3, "cde"),
    ];
    let page = page(&mut cursor, &rows).expect("a page");
    assert_eq!(page.seqs, [1, 2, 3]);
    assert_eq!(page.text, "abcde");
    assert_eq!(page.ends, [2, 2, 5]);
    assert_eq!(cursor.after, 3);
    assert_eq!(cursor.total, 5);
    assert!(cursor.more_now, "chunks 4 and 5 are there already");
    assert!(!cursor.finished && !cursor.must_look && !cursor.fresh);
}

#[test]
fn rows_in_any_order_come_out_by_seq() {
    let mut cursor = at(10);
    let rows = [
        chunk(13, "c"),
        chunk(11, "a"),
        status("active", 13),
        chunk(12, "b"),
    ];
    let page = page(&mut cursor, &rows).unwrap();
    assert_eq!(page.seqs, [11, 12, 13]);
    assert_eq!(page.text, "abc");
    assert_eq!(page.ends, [1, 2, 3]);
    assert_eq!(cursor.after, 13);
    assert!(!cursor.more_now);
}

#[test]
fn ends_count_utf16_units() {
    let mut cursor = at(0);
    // é: one unit (two bytes); 😀: two units (a surrogate pair, four bytes); 日本: two.
    let rows = [
        status("active", 4),
        chunk(1, "é"),
        chunk(2, "😀"),
        chunk(3, "ab"),
        chunk(4, "日本"),
    ];
    let page = page(&mut cursor, &rows).unwrap();
    assert_eq!(page.ends, [1, 3, 5, 7]);
    assert_eq!(page.text.encode_utf16().count(), 7);
    // What index.cjs does: slice the text at the ends.
    let units: Vec<u16> = page.text.encode_utf16().collect();
    let mut start = 0;
    let mut texts = Vec::new();
    for &end in &page.ends {
        texts.push(String::from_utf16(&units[start..end as usize]).unwrap());
        start = end as usize;
    }
    assert_eq!(texts, ["é", "😀", "ab", "日本"]);
}

#[test]
fn a_missing_stream_ends_the_reader() {
    let mut cursor = at(0);
    assert_eq!(page(&mut cursor, &[]), None);
    assert!(cursor.finished);
    // Chunks without a status row (its stream cleaned up meanwhile): the same.
    let mut cursor = at(0);
    assert_eq!(page(&mut cursor, &[chunk(1, "orphan")]), None);
    assert!(cursor.finished);
}

#[test]
fn a_finished_stream_read_to_its_count_ends_after_the_page() {
    let mut cursor = at(0);
    let page = page(
        &mut cursor,
        &[status("done", 2), chunk(1, "a"), chunk(2, "b")],
    );
    assert_eq!(page.unwrap().seqs, [1, 2]);
    assert!(cursor.finished, "nothing more can come");
    assert!(!cursor.more_now);
    // Finished, and the cursor already at the count: no page at all.
    let mut cursor = at(2);
    assert_eq!(page_of(&mut cursor, &[status("stopped", 2)]), None);
    assert!(cursor.finished);
}

#[test]
fn a_finished_stream_not_yet_read_to_its_count_goes_on() {
    let mut cursor = at(0);
    let rows = [status("error", 3), chunk(1, "a"), large(2), chunk(3, "c")];
    let page = page(&mut cursor, &rows).unwrap();
    assert_eq!(page.seqs, [1]);
    assert!(!cursor.finished);
    assert!(cursor.more_now);
}

#[test]
fn an_active_stream_read_to_its_count_waits() {
    let mut cursor = at(2);
    let page = page(&mut cursor, &[status("active", 2)]).unwrap();
    assert!(page.seqs.is_empty());
    assert!(!cursor.finished && !cursor.more_now);
    // Next time the reader is at the end as last seen: a tail fetch, texts and all.
    assert_eq!(cursor.next_range(), (2 + TAIL_ROWS, LARGEST_KEPT as i64));
}

#[test]
fn a_large_chunk_ends_the_page_and_comes_alone_next() {
    let mut cursor = at(0);
    let rows = [status("active", 4), chunk(1, "a"), large(2), chunk(3, "c")];
    let first = page(&mut cursor, &rows).unwrap();
    assert_eq!(first.seqs, [1], "the page ends before the large chunk");
    assert_eq!(cursor.after, 1);
    assert!(cursor.large_next && cursor.more_now);
    // Next: that chunk alone, whatever its size.
    assert_eq!(cursor.next_range(), (2, i64::MAX));
    let big = "x".repeat(5000);
    let second = page(&mut cursor, &[status("active", 4), chunk(2, &big)]).unwrap();
    assert_eq!(second.seqs, [2]);
    assert_eq!(second.ends, [5000]);
    assert!(!cursor.large_next);
    assert_eq!(cursor.next_range(), (2 + PAGE_ROWS, SMALL_CHUNK_BYTES));
}

#[test]
fn a_large_chunk_first_in_the_page_makes_an_empty_page() {
    let mut cursor = at(0);
    let page = page(&mut cursor, &[status("active", 2), large(1), chunk(2, "b")]).unwrap();
    assert!(page.seqs.is_empty());
    assert_eq!(cursor.after, 0, "the cursor stays before the large chunk");
    assert!(cursor.large_next);
}

#[test]
fn a_large_chunk_without_text_when_asked_alone_is_malformed() {
    let mut cursor = at(1);
    cursor.large_next = true;
    let err = cursor
        .take_page(&sql(), &[status("active", 2), large(2)], false)
        .unwrap_err();
    assert_eq!(err.code(), "MALFORMED_RESULT");
}

#[test]
fn a_status_row_without_a_count_is_malformed() {
    let mut cursor = at(0);
    let rows = [Row(vec![Cell::Null, Cell::Text("active".into())])];
    let err = cursor.take_page(&sql(), &rows, false).unwrap_err();
    assert_eq!(err.code(), "MALFORMED_RESULT");
    let rows = [Row(vec![Cell::Null, Cell::Null])];
    assert!(cursor.take_page(&sql(), &rows, false).is_err());
}

#[test]
fn a_gap_is_stepped_over() {
    // Rows deleted by hand: nothing in (0, 2000] although the stream has 5000 chunks.
    let mut cursor = at(0);
    let page = page(&mut cursor, &[status("active", 5000)]).unwrap();
    assert!(page.seqs.is_empty());
    assert_eq!(cursor.after, PAGE_ROWS);
    assert!(cursor.more_now);
    // A gap at the end of the range stops at the stream's count.
    let mut cursor = at(4000);
    page_of(&mut cursor, &[status("active", 4100)]);
    assert_eq!(cursor.after, 4100);
}

#[test]
fn a_fetch_lands_only_when_it_reaches_the_cursor_whole() {
    let mut cursor = at(3);
    let rows = [status("active", 5), chunk(4, "d"), chunk(5, "e")];
    let taken = cursor.take_page(&sql(), &rows, true).unwrap();
    assert_eq!(taken.landed, Some((vec![(4, "d"), (5, "e")], 5, true)));
    assert_eq!(taken.page.unwrap().seqs, [4, 5]);
    // Not fetching: nothing for the tail.
    let mut cursor = at(3);
    assert_eq!(cursor.take_page(&sql(), &rows, false).unwrap().landed, None);
    // A gap between the cursor and the chunks: the tail cannot take them.
    let mut cursor = at(3);
    let rows = [status("active", 5), chunk(5, "e")];
    assert_eq!(cursor.take_page(&sql(), &rows, true).unwrap().landed, None);
    // A finished stream at its count lands (the readers waiting end) with no page.
    let mut cursor = at(5);
    let rows = [status("done", 5)];
    let taken = cursor.take_page(&sql(), &rows, true).unwrap();
    assert_eq!(taken.landed, Some((vec![], 5, false)));
    assert!(taken.page.is_none());
}

#[test]
fn chunks_from_the_tail_move_the_cursor() {
    let mut cursor = at(3);
    cursor.total = 3;
    cursor.large_next = true;
    let chunks: Vec<(u32, Arc<str>)> = vec![(4, "ü".into()), (5, "x".into())];
    let page = cursor.take_known(&chunks, false, true);
    assert_eq!(page.seqs, [4, 5]);
    assert_eq!(page.text, "üx");
    assert_eq!(page.ends, [1, 2]);
    assert_eq!((cursor.after, cursor.total), (5, 5));
    assert!(cursor.more_now && !cursor.large_next && !cursor.finished);
    // The stream's end with them: the reader is done.
    let page = cursor.take_known(&[(6, "y".into())], true, false);
    assert_eq!(page.seqs, [6]);
    assert!(cursor.finished && !cursor.more_now);
    // Nothing: the cursor stays.
    let page = cursor.take_known(&[], false, false);
    assert_eq!(page, Page::default());
    assert_eq!(cursor.after, 6);
}

#[test]
fn a_count_that_went_back_ends_the_reader_when_seen_twice() {
    let mut cursor = at(0);
    page(
        &mut cursor,
        &[status("active", 2), chunk(1, "a"), chunk(2, "b")],
    );
    assert_eq!((cursor.after, cursor.went_back_below()), (2, 2));
    // Once: maybe a snapshot behind this reader's; an empty page, and it waits.
    let once = page(&mut cursor, &[status("active", 1)]).expect("an empty page");
    assert!(once.seqs.is_empty() && !cursor.more_now && !cursor.finished);
    let rows = [status("active", 1)];
    let twice = cursor.take_page(&sql(), &rows, false);
    let err = twice.expect_err("the count went back");
    assert_eq!(err.code(), "STREAM_WENT_BACK");
    assert!(err
        .to_string()
        .contains("went back to 1, below the 2 chunks"));
}

#[test]
fn a_count_that_comes_back_in_between_is_no_error() {
    let mut cursor = at(0);
    page(
        &mut cursor,
        &[status("active", 2), chunk(1, "a"), chunk(2, "b")],
    );
    page(&mut cursor, &[status("active", 1)]);
    page(&mut cursor, &[status("active", 3), chunk(3, "c")]);
    assert!(!cursor.went_back);
    assert_eq!(
        page(&mut cursor, &[status("active", 3)]).map(|p| p.seqs.len()),
        Some(0)
    );
}

#[test]
fn a_reader_that_starts_past_the_end_waits_as_the_originals_does() {
    let mut cursor = at(10);
    assert_eq!(cursor.went_back_below(), 0);
    for _ in 0..3 {
        let page = page(&mut cursor, &[status("active", 3)]).expect("an empty page");
        assert!(page.seqs.is_empty());
    }
    assert_eq!(cursor.went_back_below(), 0);
}
