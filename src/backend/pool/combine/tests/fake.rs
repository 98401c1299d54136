//! A stand-in for the pool, and helpers.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::backend::pool::combine::{Queues, Runner};
use crate::backend::rows::{Param, Row};
use crate::error::Result;
use crate::sql::Statement;

/// What an answer is made from: the statement's text and its parameters.
pub type Answer = Box<dyn Fn(&str, &[Param]) -> Result<Vec<Row>> + Send + Sync>;

/// A stand-in for the pool: records every statement it runs, answers with `answer`, and
/// holds statements whose text starts with a held prefix until `open`.
pub struct Fake {
    queues: Queues,
    pub log: Mutex<Vec<(String, Vec<Param>)>>,
    answer: Answer,
    /// Statements are held while this is false...
    pub gate: watch::Sender<bool>,
    /// ...if their text is one of these (all, when empty).
    held: Vec<String>,
    /// Announcements waiting to go out (`take_announcements`), and those given back.
    pub waiting: Mutex<Vec<String>>,
    pub again: Mutex<Vec<String>>,
}

impl Fake {
    pub fn holding(answer: Answer, held: Vec<String>, open: bool) -> Arc<Self> {
        Arc::new(Fake {
            queues: Queues::default(),
            log: Mutex::new(Vec::new()),
            answer,
            gate: watch::Sender::new(open),
            held,
            waiting: Mutex::default(),
            again: Mutex::default(),
        })
    }

    pub fn open(&self) {
        self.gate.send_replace(true);
    }

    /// The texts run so far, and each one's first parameter.
    pub fn log(&self) -> Vec<(String, Param)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(text, params)| (text.clone(), params[0].clone()))
            .collect()
    }

    /// Waits until `n` statements were sent.
    pub async fn sent(&self, n: usize) {
        for _ in 0..2000 {
            if self.log.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("{n} statements were never sent: {:?}", self.log());
    }
}

impl Runner for Fake {
    fn query(
        &self,
        statement: &Statement,
        params: &[Param],
        _deadline: Instant,
    ) -> impl Future<Output = Result<Vec<Row>>> + Send {
        self.log
            .lock()
            .unwrap()
            .push((statement.text.to_string(), params.to_vec()));
        let answer = (self.answer)(&statement.text, params);
        let held = self.held.is_empty() || self.held.iter().any(|t| **t == *statement.text);
        let mut gate = self.gate.subscribe();
        async move {
            if held {
                let _ = gate.wait_for(|open| *open).await;
            }
            answer
        }
    }

    fn size(&self) -> usize {
        10
    }

    fn query_timeout_ms(&self) -> u64 {
        1000
    }

    fn queues(&self) -> &Queues {
        &self.queues
    }

    fn take_announcements(&self) -> Option<Vec<String>> {
        Some(std::mem::take(&mut *self.waiting.lock().unwrap()))
    }

    fn announce_again(&self, payloads: Vec<String>) {
        self.again.lock().unwrap().extend(payloads);
    }
}

pub fn text(p: &Param) -> &str {
    match p {
        Param::Text(s) => s,
        other => panic!("not text: {other:?}"),
    }
}

pub fn texts(p: &Param) -> &[String] {
    match p {
        Param::TextArray(s) => s,
        other => panic!("not a text array: {other:?}"),
    }
}

pub fn cell_text(rows: &[Row]) -> Vec<&str> {
    rows.iter().map(|row| row.text(0).unwrap()).collect()
}

pub fn later() -> Instant {
    Instant::now() + Duration::from_secs(5)
}
