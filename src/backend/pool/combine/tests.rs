mod fake;

use std::time::Duration;

use super::*;
use crate::sql::{ConversationSql, StreamSql};
use fake::{cell_text, later, text, texts, Answer, Fake};

#[test]
fn rows_go_back_to_their_calls_by_position() {
    let row = |ord: i64, v: &str| Row(vec![Cell::Int(ord), Cell::Text(v.into())]);
    let rows = vec![
        row(2, "b1"),
        row(1, "a"),
        row(2, "b2"),
        row(4, "nobody's"),
        row(0, "nobody's"),
        Row(vec![Cell::Null, Cell::Text("no position".into())]),
    ];
    let each = demux(rows, 3);
    assert_eq!(each.len(), 3);
    assert_eq!(cell_text(&each[0]), ["a"]);
    assert_eq!(
        cell_text(&each[1]),
        ["b1", "b2"],
        "a call's rows keep their order"
    );
    assert!(each[2].is_empty(), "a call without rows gets none");
    // The position is taken off: the rows are the single statement's columns.
    assert_eq!(each[0][0].0.len(), 1);
}

#[tokio::test]
async fn calls_queued_behind_the_lane_go_out_as_one_statement() {
    let sql = ConversationSql::new("convs").load;
    let combined = sql.combined.clone().unwrap();
    let (one, many) = (sql.text.to_string(), combined.statement.text.to_string());
    let answer: Answer = {
        let (one, many) = (one.clone(), many.clone());
        Box::new(move |t, params| {
            if t == one {
                return Ok(vec![Row(vec![Cell::Text(format!(
                    "one:{}",
                    text(&params[0])
                ))])]);
            }
            assert_eq!(t, many);
            // Rows in any order, led by the call's position; no row for "d".
            let ids = texts(&params[0]);
            Ok(ids
                .iter()
                .enumerate()
                .rev()
                .filter(|(_, id)| *id != "d")
                .map(|(i, id)| {
                    Row(vec![
                        Cell::Int(i as i64 + 1),
                        Cell::Text(format!("many:{id}")),
                    ])
                })
                .collect())
        })
    };
    let pool = Fake::holding(answer, Vec::new(), false);
    let call = |id: &str| {
        let params = vec![Param::Text(id.into()), Param::BigInt(7)];
        tokio::spawn(run(pool.clone(), &sql, params, later()))
    };
    // The first call takes the lane (held); the others queue, in call order.
    let a = call("a");
    let (b, c, d) = (call("b"), call("c"), call("d"));
    pool.sent(1).await;
    pool.open();
    assert_eq!(cell_text(&a.await.unwrap().unwrap()), ["one:a"]);
    assert_eq!(cell_text(&b.await.unwrap().unwrap()), ["many:b"]);
    assert_eq!(cell_text(&c.await.unwrap().unwrap()), ["many:c"]);
    assert!(d.await.unwrap().unwrap().is_empty());
    let log = pool.log.lock().unwrap();
    assert_eq!(log.len(), 2, "one statement for the three queued calls");
    assert_eq!(log[0].0, one);
    assert_eq!(log[1].0, many);
    assert_eq!(texts(&log[1].1[0]), ["b", "c", "d"]);
    assert!(matches!(&log[1].1[1], Param::BigIntArray(v) if v == &[7, 7, 7]));
}

#[tokio::test]
async fn a_lone_queued_call_goes_in_the_single_form() {
    let sql = ConversationSql::new("convs").load;
    let one = sql.text.to_string();
    let answer: Answer =
        Box::new(|_, params| Ok(vec![Row(vec![Cell::Text(text(&params[0]).into())])]));
    let pool = Fake::holding(answer, Vec::new(), false);
    let a = tokio::spawn(run(
        pool.clone(),
        &sql,
        vec![Param::Text("a".into()), Param::BigInt(1)],
        later(),
    ));
    let b = tokio::spawn(run(
        pool.clone(),
        &sql,
        vec![Param::Text("b".into()), Param::BigInt(1)],
        later(),
    ));
    pool.sent(1).await;
    pool.open();
    assert_eq!(cell_text(&a.await.unwrap().unwrap()), ["a"]);
    assert_eq!(cell_text(&b.await.unwrap().unwrap()), ["b"]);
    assert!(pool.log().iter().all(|(t, _)| *t == one));
}

#[tokio::test]
async fn a_queued_call_past_its_deadline_is_answered_unsent() {
    let sql = ConversationSql::new("convs").load;
    let answer: Answer = Box::new(|_, _| Ok(Vec::new()));
    let pool = Fake::holding(answer, Vec::new(), false);
    let a = tokio::spawn(run(
        pool.clone(),
        &sql,
        vec![Param::Text("a".into()), Param::BigInt(1)],
        later(),
    ));
    let soon = Instant::now() + Duration::from_millis(30);
    let b = run(
        pool.clone(),
        &sql,
        vec![Param::Text("b".into()), Param::BigInt(1)],
        soon,
    );
    let err = b.await.unwrap_err();
    assert_eq!(err.code(), "QUERY_TIMEOUT");
    assert!(err.to_string().contains("never sent"), "{err}");
    pool.open();
    a.await.unwrap().unwrap();
    // Let the lane serve what is queued (nothing: the late call was taken out).
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(pool.log().len(), 1, "the late call never went out");
}

/// Appends: the lane skips rows locked elsewhere. `locked` is such a stream.
fn append_fake(sql: &StreamSql, held: Vec<String>) -> Arc<Fake> {
    let combined = sql.append.combined.clone().unwrap();
    let (one, side) = combined.skipping.clone().unwrap();
    let (one, side, many) = (
        one.text.to_string(),
        side.text.to_string(),
        combined.statement.text.to_string(),
    );
    let seq = |n: i64| Row(vec![Cell::Int(n), Cell::Null]);
    let answer: Answer = Box::new(move |t, params| {
        if t == one {
            // No row: the stream's row is locked elsewhere.
            return Ok(if text(&params[0]) == "locked" {
                vec![]
            } else {
                vec![seq(1)]
            });
        }
        if t == side {
            return Ok(vec![seq(100)]);
        }
        assert_eq!(t, many);
        Ok(texts(&params[0])
            .iter()
            .enumerate()
            .filter(|(_, id)| *id != "locked")
            .map(|(i, _)| Row(vec![Cell::Int(i as i64 + 1), Cell::Int(2)]))
            .collect())
    });
    Fake::holding(answer, held, true)
}

fn append(id: &str) -> Vec<Param> {
    vec![
        Param::Text(id.into()),
        Param::Text("chunk".into()),
        Param::BigInt(0),
        Param::OptInt(None),
    ]
}

#[tokio::test]
async fn a_call_whose_row_is_locked_takes_the_side_path() {
    let sql = StreamSql::new("chunks", "status", false, "o");
    let pool = append_fake(&sql, vec!["nothing held".into()]);
    let rows = run(pool.clone(), &sql.append, append("locked"), later())
        .await
        .unwrap();
    assert_eq!(rows[0].int(0), Some(100), "answered by the waiting form");
    let free = run(pool.clone(), &sql.append, append("free"), later())
        .await
        .unwrap();
    assert_eq!(free[0].int(0), Some(1));
    let (one, side) = sql
        .append
        .combined
        .as_ref()
        .unwrap()
        .skipping
        .clone()
        .unwrap();
    let texts: Vec<_> = pool
        .log()
        .into_iter()
        .map(|(t, p)| (t, text(&p).to_string()))
        .collect();
    assert_eq!(
        texts,
        [
            (one.text.to_string(), "locked".to_string()),
            (side.text.to_string(), "locked".to_string()),
            (one.text.to_string(), "free".to_string()),
        ]
    );
}

#[tokio::test]
async fn later_calls_of_a_held_stream_follow_it_and_others_go_on() {
    let sql = StreamSql::new("chunks", "status", false, "o");
    let (one, side) = sql
        .append
        .combined
        .as_ref()
        .unwrap()
        .skipping
        .clone()
        .unwrap();
    // The side path's statements wait (the lock is held elsewhere) until `open`.
    let pool = append_fake(&sql, vec![side.text.to_string()]);
    pool.gate.send_replace(false);
    let first = tokio::spawn(run(pool.clone(), &sql.append, append("locked"), later()));
    pool.sent(2).await; // the lane's try, then the side path's
                        // The stream is held: its next call goes behind the first, never on the lane...
    let second = tokio::spawn(run(pool.clone(), &sql.append, append("locked"), later()));
    // ...while another stream's call goes on at once.
    let other = run(pool.clone(), &sql.append, append("free"), later())
        .await
        .unwrap();
    assert_eq!(other[0].int(0), Some(1));
    pool.open();
    assert_eq!(first.await.unwrap().unwrap()[0].int(0), Some(100));
    assert_eq!(second.await.unwrap().unwrap()[0].int(0), Some(100));
    let log: Vec<_> = pool
        .log()
        .into_iter()
        .map(|(t, p)| (t, text(&p).to_string()))
        .collect();
    let one = one.text.to_string();
    let side = side.text.to_string();
    assert_eq!(
        log,
        [
            (one.clone(), "locked".into()),
            (side.clone(), "locked".into()),
            (one, "free".into()),
            (side, "locked".into()),
        ]
    );
}

#[tokio::test]
async fn a_batch_call_without_a_row_takes_the_side_path() {
    let sql = StreamSql::new("chunks", "status", false, "o");
    let combined = sql.append.combined.clone().unwrap();
    let (one, side) = combined.skipping.clone().unwrap();
    // The lane's single statement waits until `open`; meanwhile three calls queue.
    let pool = append_fake(&sql, vec![one.text.to_string()]);
    pool.gate.send_replace(false);
    let a = tokio::spawn(run(pool.clone(), &sql.append, append("a"), later()));
    pool.sent(1).await;
    let queued: Vec<_> = ["b", "locked", "c"]
        .into_iter()
        .map(|id| tokio::spawn(run(pool.clone(), &sql.append, append(id), later())))
        .collect();
    pool.open();
    assert_eq!(a.await.unwrap().unwrap()[0].int(0), Some(1));
    let mut seqs = Vec::new();
    for call in queued {
        seqs.push(call.await.unwrap().unwrap()[0].int(0));
    }
    // b and c were stored by the batch (seq 2 each, per the fake); "locked" got no
    // row and went on with the waiting form.
    assert_eq!(seqs, [Some(2), Some(100), Some(2)]);
    let log: Vec<_> = pool.log().into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        log,
        [
            one.text.to_string(),
            combined.statement.text.to_string(),
            side.text.to_string()
        ]
    );
}

/// Lane appends picked to announce inside (past the notify choice's 16 trials): the first takes what waits to be announced along
/// (`carrying`, its payloads as `$5`); one within `notifyBatchMs` of it holds its own
/// announcement back (the plain form); one whose carrying statement stores nothing gives
/// what it carried back.
#[tokio::test]
async fn lane_appends_carry_what_waits_and_hold_back_within_the_batch() {
    let batch = Duration::from_millis(300);
    let sql = StreamSql::new("chunks", "status", false, "o").notify_batch(batch);
    let combined = sql.append.combined.clone().unwrap();
    let one = combined.skipping.clone().unwrap().0.text.to_string();
    let notifying = combined.notifying.clone().unwrap().text.to_string();
    let carrying = combined.carrying.clone().unwrap().text.to_string();
    let answer: Answer = Box::new(move |t, params| {
        if text(&params[0]) == "refused" {
            return Ok(vec![]);
        }
        // The plain form measures slower, so the notify choice's trials pick inside.
        let notified = if t == one {
            std::thread::sleep(Duration::from_millis(2));
            Cell::Null
        } else {
            Cell::Int(1)
        };
        Ok(vec![Row(vec![Cell::Int(1), notified])])
    });
    let pool = Fake::holding(answer, vec!["nothing held".into()], true);
    for _ in 0..16 {
        run(pool.clone(), &sql.append, append("s"), later())
            .await
            .unwrap();
    }
    let last = |pool: &Fake| pool.log.lock().unwrap().last().cloned().unwrap();
    // The trials that announced inside count too: past the batch after them.
    tokio::time::sleep(batch).await;
    *pool.waiting.lock().unwrap() = vec!["earlier".into()];
    run(pool.clone(), &sql.append, append("s"), later())
        .await
        .unwrap();
    let (sent, params) = last(&pool);
    assert_eq!(sent, carrying);
    assert_eq!(text(&params[4]), r#"["earlier"]"#);
    // Within the batch: held back.
    run(pool.clone(), &sql.append, append("s"), later())
        .await
        .unwrap();
    assert_eq!(
        last(&pool).0,
        combined.skipping.clone().unwrap().0.text.to_string()
    );
    // Past it, with nothing waiting: it announces only its own.
    tokio::time::sleep(batch).await;
    run(pool.clone(), &sql.append, append("s"), later())
        .await
        .unwrap();
    assert_eq!(last(&pool).0, notifying);
    // Past it again: a carrying statement that stores nothing gives its payloads back.
    tokio::time::sleep(batch).await;
    *pool.waiting.lock().unwrap() = vec!["held".into()];
    let refused = run(pool.clone(), &sql.append, append("refused"), later()).await;
    assert!(
        refused.unwrap().is_empty(),
        "refused: no row, from the side path too"
    );
    let log = pool.log.lock().unwrap().clone();
    let (sent, params) = &log[log.len() - 2];
    assert_eq!((sent, text(&params[4])), (&carrying, r#"["held"]"#));
    assert_eq!(*pool.again.lock().unwrap(), ["held"]);
}

#[test]
fn each_combined_statement_has_its_own_queue() {
    let queues = Queues::default();
    let a = ConversationSql::new("convs").load.combined.unwrap();
    let b = ConversationSql::new("convs").load.combined.unwrap();
    assert!(Arc::ptr_eq(&queues.of(&a), &queues.of(&a.clone())));
    assert!(
        !Arc::ptr_eq(&queues.of(&a), &queues.of(&b)),
        "two stores' statements of the same text queue apart, as before"
    );
}
