use std::time::Duration;

use super::*;

fn chunk(table: &str, id: &str, seq: u32, data: &str) -> Written {
    Written::chunk(table, id, seq, data.into(), 0.0)
}

#[test]
fn payloads_stay_under_the_limit_and_carry_every_chunk_in_order() {
    let written: Vec<_> = (0..500)
        .map(|i| {
            chunk(
                "app.status",
                &format!("stream-{}", i % 7),
                i,
                &format!("token {i} "),
            )
        })
        .collect();
    let payloads = payloads(written);
    assert!(payloads.len() > 1);
    let mut carried = Vec::new();
    for payload in &payloads {
        assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
        let decoded = serde_json::from_str::<Payload>(payload).unwrap();
        assert!(decoded.x.is_empty());
        for (_, id, seq, data) in decoded.c {
            assert!(decoded.s.contains(&("app.status".into(), id.clone())));
            assert_eq!(data, format!("token {seq} "));
            carried.push(seq);
        }
    }
    assert_eq!(carried, (0..500).collect::<Vec<_>>());
}

#[test]
fn a_large_chunk_is_named_not_carried() {
    let big = "x".repeat(CARRY_AT_MOST);
    let payload = payloads([chunk("t", "a", 1, "small"), chunk("t", "a", 2, &big)]).remove(0);
    let decoded = serde_json::from_str::<Payload>(&payload).unwrap();
    assert_eq!(decoded.c.len(), 1);
    assert_eq!(decoded.x, vec![("t".to_string(), "a".to_string())]);
    let huge = "y".repeat(100_000);
    for payload in payloads([chunk("t", "b", 1, &huge)]) {
        assert!(payload.len() <= MAX_PAYLOAD);
    }
}

#[test]
fn ids_and_texts_with_any_characters_survive_the_trip() {
    let odd = "line\nbreak \"quoted\" ✓ ,[] \u{1F600}";
    let payload = payloads([chunk("t", odd, 3, odd)]).remove(0);
    let decoded = serde_json::from_str::<Payload>(&payload).unwrap();
    assert_eq!(decoded.c, vec![("t".into(), odd.into(), 3, odd.into())]);
    assert_eq!(decoded.o, wakeups::origin());
}

#[tokio::test]
async fn a_process_passes_over_its_own_notifications() {
    let mut reader = wakeups::subscribe("t", "echo");
    reader.mark_seen();
    deliver(&payloads([chunk("t", "echo", 1, "a")]).remove(0), 1);
    let woken = tokio::time::timeout(Duration::from_millis(50), reader.written()).await;
    assert!(woken.is_err(), "its own write had reached it already");
    deliver(r#"{"o":"another process","s":[["t","echo"]]}"#, 1);
    tokio::time::timeout(Duration::from_secs(1), reader.written())
        .await
        .expect("another process's write wakes it");
}

#[tokio::test]
async fn carried_chunks_reach_the_reader_without_a_query() {
    let mut reader = wakeups::subscribe("t", "carried");
    let since = match reader.look(7, 0, &mut 0, &mut true, true) {
        crate::tail::Look::Query { since } => since,
        other => panic!("{other:?}"),
    };
    reader.hub().fetched(
        &wakeups::Fetched {
            source: 7,
            after: 0,
            since,
        },
        &[],
        0,
        true,
    );
    deliver(
        r#"{"o":"another process","s":[["t","carried"]],"c":[["t","carried",1,"hi"]]}"#,
        7,
    );
    tokio::time::timeout(Duration::from_secs(1), reader.written())
        .await
        .expect("woken");
    match reader.look(7, 0, &mut { since }, &mut false, false) {
        crate::tail::Look::Chunks { chunks, .. } => {
            assert_eq!(chunks, vec![(1, Arc::from("hi"))]);
        }
        other => panic!("{other:?}"),
    }
    deliver(
        r#"{"o":"another process","s":[["t","carried"]],"f":1,"e":[["t","carried","done",1]]}"#,
        7,
    );
    assert_eq!(
        reader.look(7, 1, &mut { since }, &mut false, false),
        crate::tail::Look::Finished
    );
}

#[tokio::test]
async fn a_finish_wakes_stop_signals_and_a_write_does_not() {
    let mut stop = wakeups::subscribe(&crate::sql::finish_key("t"), "stopping");
    stop.mark_seen();
    deliver(r#"{"o":"another process","s":[["t","stopping"]]}"#, 1);
    let woken = tokio::time::timeout(Duration::from_millis(50), stop.written()).await;
    assert!(woken.is_err(), "an append does not wake a stop signal");
    deliver(r#"{"o":"another process","f":1,"s":[["t","stopping"]]}"#, 1);
    tokio::time::timeout(Duration::from_secs(1), stop.written())
        .await
        .expect("a finish wakes it");
}

#[test]
fn an_id_too_long_to_name_becomes_a_wake_up_and_the_rest_still_go() {
    // 700 bytes of U+0001: JSON spells each in 6 bytes, 4,200 bytes named, twice in `x`.
    let odd = "\u{1}".repeat(700);
    let out = payloads([
        chunk("t", "before", 1, "a"),
        chunk("t", &odd, 1, &"y".repeat(3_000)),
        chunk("t", "after", 1, "b"),
    ]);
    let mut carried = Vec::new();
    let mut woken = false;
    for payload in &out {
        assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
        let decoded = serde_json::from_str::<Payload>(payload).unwrap();
        woken |= decoded.w.is_some();
        carried.extend(decoded.c.into_iter().map(|(_, id, _, _)| id));
    }
    assert!(woken, "the stream that cannot be named wakes every reader");
    assert_eq!(carried, vec!["before".to_string(), "after".to_string()]);
}

#[test]
fn a_finish_announced_afterwards_goes_in_a_payload_of_its_own() {
    // On Citus finishes are announced after their statement, between appends.
    let written = vec![
        chunk("public.s", "a", 1, "x"),
        Written::finished("public.s", "a", "done", 1),
        chunk("public.s", "b", 1, "y"),
    ];
    let sent = payloads(written);
    assert_eq!(sent.len(), 3);
    let finish = serde_json::from_str::<Payload>(&sent[1]).unwrap();
    assert_eq!(finish.f, Some(1));
    assert_eq!(finish.s, vec![("public.s".into(), "a".into())]);
    assert_eq!(
        finish.e,
        vec![("public.s".into(), "a".into(), "done".into(), 1)]
    );
    assert!(finish.c.is_empty());
    let long = "\u{1}".repeat(2_000);
    let unnamed = payloads(vec![Written::finished("public.s", &long, "done", 1)]);
    assert_eq!(
        serde_json::from_str::<Payload>(&unnamed[0]).unwrap().w,
        Some(1)
    );
}

#[test]
fn own_writes_are_told_from_the_payload_start_probes_and_others_are_not() {
    let origin = wakeups::origin();
    for payload in payloads(vec![chunk("t", "own", 1, "say \"p\": 1")]) {
        assert!(own_writes(&payload), "serde's form: {payload}");
    }
    // PostgreSQL's json_build_object, as an append that notifies itself writes it.
    assert!(own_writes(&format!(
        r#"{{"o" : "{origin}", "s" : [["t","own"]], "c" : [["t","own",1,"x"]]}}"#
    )));
    assert!(!own_writes(&probe_payload(7)), "a probe is always read");
    assert!(
        !own_writes(&format!(r#"{{"o":"{origin}0","s":[]}}"#)),
        "a longer origin"
    );
    assert!(!own_writes(r#"{"o":"someone-else","s":[]}"#));
    assert!(!own_writes("not json"));
    assert_eq!(
        deliver(&probe_payload(9), Source::default()),
        Heard::Probe(9),
        "own probes still come back"
    );
}

#[test]
fn stamped_chunks_carry_their_commit_times_and_unstamped_payloads_are_as_before() {
    let plain = payloads([chunk("t", "a", 1, "x"), chunk("t", "a", 2, "y")]).remove(0);
    assert!(!plain.contains("\"t\":["), "{plain}");
    let stamped = |seq, at| Written::chunk("t", "a", seq, Arc::from("z"), at);
    let mixed = payloads([
        stamped(1, 0.0),
        stamped(2, 1_765_000_000_123.456),
        stamped(3, 0.0),
    ])
    .remove(0);
    let decoded = serde_json::from_str::<Payload>(&mixed).unwrap();
    assert_eq!(decoded.t, vec![0.0, 1_765_000_000_123.456, 0.0]);
    assert_eq!(decoded.c.len(), 3);
    // Many chunks, most stamped, still fit the limit, each with its time.
    let many: Vec<_> = (0..2_000)
        .map(|i| {
            let at = if i % 3 == 0 {
                0.0
            } else {
                1.5e12 + f64::from(i) / 7.0
            };
            Written::chunk(
                "t",
                &format!("s{}", i % 5),
                i,
                Arc::from("tok ".repeat((i % 9) as usize)),
                at,
            )
        })
        .collect();
    let sent = payloads(many);
    for (i, payload) in sent.iter().enumerate() {
        let decoded = serde_json::from_str::<Payload>(payload).unwrap();
        assert!(payload.len() <= MAX_PAYLOAD, "{}", payload.len());
        // Full, not cut short: no payload could have taken one more chunk.
        if i + 1 < sent.len() {
            assert!(payload.len() > MAX_PAYLOAD - 200, "{}", payload.len());
        }
        assert_eq!(decoded.t.len(), decoded.c.len());
    }
}

#[tokio::test]
async fn a_carried_commit_time_reaches_the_tail_while_the_lag_is_measured() {
    crate::clock::measure_lag(true);
    let mut reader = wakeups::subscribe("t", "timed");
    let since = match reader.look(7, 0, &mut 0, &mut true, true) {
        crate::tail::Look::Query { since } => since,
        other => panic!("{other:?}"),
    };
    let fetch = wakeups::Fetched {
        source: 7,
        after: 0,
        since,
    };
    reader.hub().fetched(&fetch, &[], 0, true);
    // The database server's time (an append that notified itself), then an older
    // version's payload without `t`.
    deliver(
        r#"{"o":"elsewhere","s":[["t","timed"]],"c":[["t","timed",1,"a"]],"t":[1765000000123.456]}"#,
        7,
    );
    deliver(
        r#"{"o":"elsewhere","s":[["t","timed"]],"c":[["t","timed",2,"b"]]}"#,
        7,
    );
    match reader.look(7, 0, &mut { since }, &mut false, false) {
        crate::tail::Look::Chunks {
            chunks, committed, ..
        } => {
            assert_eq!(chunks.len(), 2);
            let at: Vec<_> = committed.iter().map(|c| (c.at, c.heard)).collect();
            assert_eq!(at, vec![(1_765_000_000_123.456, true), (0.0, true)]);
        }
        other => panic!("{other:?}"),
    }
}
