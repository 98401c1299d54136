//! Cross-process wake-ups for stores built from a connection string: LISTEN/NOTIFY (the
//! payload format is `backend/notify.rs`'s).
//!
//! - **Publishing.** After an append commits, its stream is queued here; one task per
//!   pool sends what has queued up as one `pg_notify` (a JSON list of `[table, id]`, kept
//!   under PostgreSQL's 8,000-byte payload limit) on a pooled connection, outside the
//!   append's transaction, so appends never wait for it and never take the global NOTIFY
//!   lock at commit. While one notification is in flight the next batch gathers, and it
//!   goes out no sooner than the store's `notifyBatchMs` after the pool's last
//!   announcement (this task's, or an append's own): a listener elsewhere wakes once per
//!   batch while chunks are written back to back. An append that announces inside its
//!   own transaction takes what waits here along (`take`), first. (stop, complete and
//!   fail notify inside their own statement: see `sql/stream.rs`.)
//! - **Listening.** One dedicated connection per pool (deadpool's pooled connections
//!   cannot LISTEN), opened when a reader first waits. Each notification wakes this
//!   process's readers of those streams (`wakeups.rs`). If the connection is lost it is
//!   opened again with back-off, and once it LISTENs again every reader in the process is
//!   woken to catch up from its own cursor: nothing missed, nothing repeated.
//! - **Proving it.** Right after LISTEN the listener sends itself a probe through the
//!   pool. Only once the probe comes back does the process count on notifications (and
//!   the check of waiting readers slows down, `backend/check.rs`). Behind a pooler that accepts
//!   LISTEN but never delivers (PgBouncer in transaction mode) the probe does not come
//!   back within `DEAF_AFTER`: the listener UNLISTENs and closes its connection, readers
//!   poll (`deaf-polling`), and it tries again after a back-off of `DEAF_RETRY` doubling
//!   up to `DEAF_RETRY_AT_MOST`. The `listenUrl` option gives it a direct connection
//!   string of its own (the pool may go through a pooler; LISTEN cannot).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_postgres::{AsyncMessage, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::conns::Conns;
use super::writable::{listen_if_writable, still_writable, Listened, READ_ONLY_RETRY};
use crate::backend::notify::{deliver, payloads, probe_payload, Heard, Written};
use crate::backend::rows::Param;
use crate::backend::stats::Counters;
use crate::sql::{Statement, NOTIFY_CHANNEL as CHANNEL};
use crate::tail::Source;
use crate::telemetry;
use crate::wakeups;

/// A batch of announcements on its way this long no longer holds back an append's own
/// (`Notifier::take`).
const STUCK: Duration = Duration::from_millis(100);
/// Most writes queued for the next notification. Beyond it a write goes unannounced:
/// readers in other processes then find it through their shared check (`backend/check.rs`).
const MOST_QUEUED: usize = 100_000;
/// The listener's probe is sent again after this, doubling, until it comes back...
const PROBE_AGAIN: Duration = Duration::from_millis(500);
/// ...or until this has passed since LISTEN: then the listener is deaf.
const DEAF_AFTER: Duration = Duration::from_secs(3);
/// A deaf listener tries again after this, doubling up to `DEAF_RETRY_AT_MOST`.
const DEAF_RETRY: Duration = Duration::from_secs(30);
const DEAF_RETRY_AT_MOST: Duration = Duration::from_secs(600);

/// The listener's state, as `stats()` reports it.
const OFF: u8 = 0;
const CONNECTING: u8 = 1;
const CONFIRMED: u8 = 2;
const DEAF: u8 = 3;

/// A NOTIFY takes a transaction id, so its commit would wait for a WAL flush like any
/// write; nothing of it needs to outlive a crash (notifications never do), so it commits
/// without waiting.
fn notify_statement() -> Statement {
    Statement::plain(NOTIFY_SQL.into())
}

/// The text of the statement that sends a notification (`$1` channel, `$2` payload);
/// `lib/client-hub.cjs` sends the same for JS clients.
/// Setting `transaction_read_only` off first makes a read-only session refuse it (see
/// `Conns::query_writable`): a notification never goes out from a read-only node.
const NOTIFY_SQL: &str = "SELECT set_config('transaction_read_only', 'off', true), \
     pg_notify($1::text, $2::text), set_config('synchronous_commit', 'off', true)";

pub struct Notifier {
    conns: Conns,
    /// How often a confirmed listener probes itself again (`listenHeartbeatMs`).
    heartbeat: Duration,
    config: Config,
    tls: MakeRustlsConnect,
    /// What waits to be announced, and the task that sends it (started with the first).
    outbox: Arc<Outbox>,
    publisher: OnceLock<()>,
    /// The pool's source: what its listener hears is from its database.
    source: Source,
    listener: Mutex<Option<JoinHandle<()>>>,
    /// The listener is up and has received its own probe.
    listening: Arc<AtomicBool>,
    state: Arc<AtomicU8>,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // What waits goes out at once; then the publishing task ends.
        self.outbox.queue(|waiting| waiting.closed = true);
        if let Some(listener) = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            listener.abort();
        }
    }
}

impl Notifier {
    pub fn new(
        conns: Conns,
        config: Config,
        tls: MakeRustlsConnect,
        source: Source,
        heartbeat: Duration,
    ) -> Self {
        Notifier {
            heartbeat,
            source,
            conns,
            config,
            tls,
            outbox: Arc::default(),
            publisher: OnceLock::new(),
            listener: Mutex::new(None),
            listening: Arc::default(),
            state: Arc::new(AtomicU8::new(OFF)),
        }
    }

    /// "off", "connecting", "confirmed" or "deaf-polling".
    pub fn state(&self) -> &'static str {
        match self.state.load(Ordering::Acquire) {
            CONNECTING => "connecting",
            CONFIRMED => "confirmed",
            DEAF => "deaf-polling",
            _ => "off",
        }
    }

    /// Queues a notification of a write, to go out no sooner than `batch` after the last
    /// announcement. Call from the tokio runtime.
    pub fn publish(&self, written: Written, batch: Duration) {
        self.publisher.get_or_init(|| {
            tokio::spawn(publish_batches(self.conns.clone(), self.outbox.clone()));
        });
        self.outbox.queue(|waiting| {
            if waiting.written.len() < MOST_QUEUED {
                waiting.written.push(written);
            }
            waiting.batch = Some(waiting.batch.map_or(batch, |b| b.min(batch)));
        });
    }

    /// For an append about to announce inside its own transaction: the payloads waiting
    /// here (maybe none), which it carries, first; `None` while a batch is on its way
    /// (the append then announces after it, so listeners hear chunks in order), unless
    /// that batch has taken `STUCK` already (waiting for a connection, say).
    pub fn take(&self) -> Option<Vec<String>> {
        let taken = {
            let mut waiting = self.outbox.lock();
            if waiting.sending.is_some_and(|since| since.elapsed() < STUCK) {
                return None;
            }
            waiting.last = Some(Instant::now());
            waiting.take()
        };
        Some(taken.payloads())
    }

    /// Payloads an append took (`take`) but did not send after all: they go out next.
    pub fn again(&self, payloads: Vec<String>) {
        self.outbox.queue(|waiting| {
            waiting.again.extend(payloads);
            waiting.batch = Some(Duration::ZERO);
        });
    }

    /// Starts the listener connection unless it runs. Call from the tokio runtime.
    pub fn listen(&self) {
        let mut listener = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
        if listener.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        *listener = Some(tokio::spawn(listen_forever(
            self.config.clone(),
            self.tls.clone(),
            self.conns.clone(),
            self.listening.clone(),
            self.state.clone(),
            self.source,
            self.heartbeat,
        )));
    }

    /// True while notifications are known to arrive.
    pub fn listening(&self) -> Arc<AtomicBool> {
        self.listening.clone()
    }
}

/// What waits to be announced (`Notifier::publish`), and when the last announcement went.
#[derive(Default)]
struct Outbox {
    waiting: Mutex<Waiting>,
    wake: Notify,
}

#[derive(Default)]
struct Waiting {
    written: Vec<Written>,
    /// Payloads taken to be carried that must go out after all.
    again: Vec<String>,
    /// The shortest `notifyBatchMs` of what waits (`None`: nothing waits).
    batch: Option<Duration>,
    /// When the pool last announced: a batch sent, or an append took what waited to
    /// announce it with its own chunk (`Notifier::take`, as its statement goes out).
    last: Option<Instant>,
    /// Since when a batch is on its way.
    sending: Option<Instant>,
    /// The pool is gone: what waits goes out at once, then the task ends.
    closed: bool,
}

/// What the publishing task does next.
enum Next {
    Wait,
    WaitUntil(Instant),
    Send(Taken),
    End,
}

/// What waited, taken out (its payloads are built outside the lock).
struct Taken {
    again: Vec<String>,
    written: Vec<Written>,
}

impl Taken {
    /// As payloads, those to send again first.
    fn payloads(self) -> Vec<String> {
        let mut out = self.again;
        if !self.written.is_empty() {
            out.extend(payloads(self.written));
        }
        out
    }
}

impl Waiting {
    fn take(&mut self) -> Taken {
        self.batch = None;
        Taken {
            again: std::mem::take(&mut self.again),
            written: std::mem::take(&mut self.written),
        }
    }
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn queue(&self, add: impl FnOnce(&mut Waiting)) {
        add(&mut self.lock());
        self.wake.notify_one();
    }

    /// The next batch, once its time has come.
    fn next(&self) -> Next {
        let mut waiting = self.lock();
        let Some(batch) = waiting.batch else {
            return if waiting.closed {
                Next::End
            } else {
                Next::Wait
            };
        };
        if let Some(due) = waiting.last.map(|last| last + batch) {
            if due > Instant::now() && !waiting.closed {
                return Next::WaitUntil(due);
            }
        }
        waiting.sending = Some(Instant::now());
        Next::Send(waiting.take())
    }

    fn sent(&self) {
        let mut waiting = self.lock();
        waiting.sending = None;
        waiting.last = Some(Instant::now());
    }
}

/// Sends what has queued up, as few notifications as fit, until the pool goes. Each
/// within `queryTimeoutMs`; a failure loses nothing but time (readers in other processes
/// fall back to their shared check).
async fn publish_batches(conns: Conns, outbox: Arc<Outbox>) {
    let statement = notify_statement();
    loop {
        match outbox.next() {
            Next::End => return,
            Next::Wait => outbox.wake.notified().await,
            // What waits may be carried by an append meanwhile.
            Next::WaitUntil(due) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = outbox.wake.notified() => {}
                }
            }
            Next::Send(taken) => {
                send_batch(&conns, &statement, taken.payloads()).await;
                outbox.sent();
            }
        }
    }
}

async fn send_batch(conns: &Conns, statement: &Statement, batch: Vec<String>) {
    for payload in batch {
        let params = [Param::Text(CHANNEL.into()), Param::Text(payload)];
        Counters::add(&conns.counters.notifications_sent);
        match conns
            .query_writable(statement, &params, conns.deadline())
            .await
        {
            Ok(_) => {}
            // This payload was refused: the others still go.
            Err(crate::error::Error::Database { .. }) => {}
            Err(_) => break, // the database is away
        }
    }
}

/// How a listening connection ended.
#[derive(Debug, PartialEq)]
enum Ended {
    /// It never got to LISTEN.
    NotListening,
    /// It listened, then was lost.
    Lost,
    /// Its probe never came back: it was closed.
    Deaf,
    /// Its node is read-only (a standby, a failed-over writer): writers notify elsewhere.
    ReadOnly,
}

/// LISTENs on a connection of its own; when it is lost, connects again with back-off;
/// when it is deaf, closes it and tries again much later.
async fn listen_forever(
    config: Config,
    tls: MakeRustlsConnect,
    conns: Conns,
    up: Arc<AtomicBool>,
    state: Arc<AtomicU8>,
    source: Source,
    heartbeat: Duration,
) {
    // Probe numbers, unique in the process (its pools share the channel).
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let mut backoff = Duration::from_millis(50);
    let mut deaf_backoff = DEAF_RETRY;
    let target = telemetry::Target::of(&config);
    loop {
        let probe = PROBES.fetch_add(1, Ordering::Relaxed);
        let start = telemetry::now();
        if state.load(Ordering::Acquire) != DEAF {
            state.store(CONNECTING, Ordering::Release);
        }
        let ended = listen_once(
            &config,
            tls.clone(),
            &conns,
            &up,
            &state,
            (probe, heartbeat),
            (source, &target),
        )
        .await;
        up.store(false, Ordering::Release);
        telemetry::unlisten(&format!("{ended:?}"), start, &target);
        match ended {
            Ended::Deaf => {
                state.store(DEAF, Ordering::Release);
                // Readers poll meanwhile: wake them so they look now.
                wakeups::wake_all();
                tokio::time::sleep(deaf_backoff).await;
                deaf_backoff = (deaf_backoff * 2).min(DEAF_RETRY_AT_MOST);
                continue;
            }
            Ended::Lost => backoff = Duration::from_millis(50),
            Ended::NotListening => {}
            // Until the address leads to the writable node: soon after a failover.
            Ended::ReadOnly => backoff = READ_ONLY_RETRY / 2,
        }
        if state.load(Ordering::Acquire) != DEAF {
            state.store(CONNECTING, Ordering::Release);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One listening connection, until it ends. `probe`: its probe's number, and how often
/// it is sent again once it came back (the heartbeat).
async fn listen_once(
    config: &Config,
    tls: MakeRustlsConnect,
    conns: &Conns,
    up: &Arc<AtomicBool>,
    state: &Arc<AtomicU8>,
    (probe, heartbeat): (u64, Duration),
    (source, target): (Source, &telemetry::Target),
) -> Ended {
    let start = telemetry::now();
    let Ok((client, mut connection)) = config.connect(tls).await else {
        return Ended::NotListening;
    };
    // How many times the probe came back.
    let echoes = Arc::new(AtomicU64::new(0));
    let counters = conns.counters.clone();
    // The connection's messages are pumped in this same task, so aborting the task
    // (the pool went away) closes the connection.
    let pump = {
        let (up, echoes) = (up.clone(), echoes.clone());
        async move {
            while let Some(Ok(message)) =
                std::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                if let AsyncMessage::Notification(notification) = message {
                    Counters::add(&counters.notifications_received);
                    if deliver(notification.payload(), source) == Heard::Probe(probe) {
                        up.store(true, Ordering::Release);
                        echoes.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
        }
    };
    tokio::pin!(pump);
    let command = format!("LISTEN {CHANNEL}");
    // Only on a writable node: writers notify there (`NOTIFY_SQL`).
    tokio::select! {
        listened = listen_if_writable(&client, &command) => match listened {
            Listened::Yes => {}
            Listened::ReadOnly => return Ended::ReadOnly,
            Listened::No => return Ended::NotListening,
        },
        _ = &mut pump => return Ended::NotListening,
    }
    telemetry::send(telemetry::record("listen", start, target));
    // Whatever was written while no one listened: every reader looks again.
    wakeups::wake_all();
    let prober = probe_until_deaf(conns, probe_payload(probe), echoes, state, heartbeat);
    tokio::select! {
        _ = &mut pump => Ended::Lost,
        _ = still_writable(&client, &command) => Ended::ReadOnly,
        silent = prober => {
            if silent {
                // It heard, then stopped hearing: the connection is gone without a word.
                return Ended::Lost;
            }
            // Deaf: stop listening and close the connection (a pooler would otherwise
            // keep a server connection that receives what it cannot pass on).
            let unlisten = client.batch_execute("UNLISTEN *");
            let ended = tokio::time::timeout(Duration::from_secs(1), async {
                tokio::select! {
                    _ = unlisten => false,
                    _ = &mut pump => true,
                }
            })
            .await;
            drop(client);
            if ended != Ok(true) {
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut pump).await;
            }
            Ended::Deaf
        }
    }
}

/// Sends the listener's probe through the pool until it comes back (then the listener
/// is confirmed), again with back-off for `DEAF_AFTER`; returns `false` if it never came
/// back (deaf). Once confirmed, sends it again every `heartbeat`; returns `true` when one
/// of those is not back within `DEAF_AFTER` (the connection went silent).
async fn probe_until_deaf(
    conns: &Conns,
    payload: String,
    echoes: Arc<AtomicU64>,
    state: &Arc<AtomicU8>,
    heartbeat: Duration,
) -> bool {
    let statement = notify_statement();
    let send = || {
        let params = [Param::Text(CHANNEL.into()), Param::Text(payload.clone())];
        Counters::add(&conns.counters.notifications_sent);
        let statement = &statement;
        async move {
            conns
                .query_writable(statement, &params, conns.deadline())
                .await
                .is_ok()
        }
    };
    let heard_since = |before: u64| echoes.load(Ordering::Acquire) > before;
    let deaf_at = tokio::time::Instant::now() + DEAF_AFTER;
    let mut wait = PROBE_AGAIN;
    loop {
        let before = echoes.load(Ordering::Acquire);
        let _ = send().await;
        let until = (tokio::time::Instant::now() + wait).min(deaf_at);
        while !heard_since(before) && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if echoes.load(Ordering::Acquire) > 0 {
            break;
        }
        if tokio::time::Instant::now() >= deaf_at {
            return false;
        }
        wait *= 2;
    }
    state.store(CONFIRMED, Ordering::Release);
    loop {
        tokio::time::sleep(heartbeat).await;
        let before = echoes.load(Ordering::Acquire);
        if !send().await {
            continue; // the database is away: the connection's own end will tell
        }
        // Counted from the commit: a busy pool does not make a listener look silent.
        let back_by = tokio::time::Instant::now() + DEAF_AFTER;
        while !heard_since(before) {
            if tokio::time::Instant::now() >= back_by {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
