//! The options of the two stores, with their defaults, and the checks on input that
//! every method shares.

use std::time::Duration;

use napi_derive::napi;

use crate::error::{Error, Result};
use crate::sql;

/// Options of `PostgresStreamStore` (`pollIntervalMs`, `ttlMs` and the table names as in
/// `@aibind/postgres`).
#[napi(object)]
#[derive(Default)]
pub struct StreamStoreOptions {
    /// Chunks table (default "aibind_stream_chunks"); `name` or `schema.name`.
    pub chunks_table: Option<String>,
    /// Status table (default "aibind_stream_status"); `name` or `schema.name`.
    pub status_table: Option<String>,
    /// How often a reader of an active stream looks for new chunks, in ms (default 100).
    pub poll_interval_ms: Option<f64>,
    /// How long a finished (done, stopped, failed) stream is kept before `cleanup()` may
    /// remove it, in ms, counted from when it finished (default 300000).
    pub ttl_ms: Option<f64>,
    /// How long an active stream may go without an append, beyond `ttlMs`, before
    /// `cleanup()` treats its writer as gone and removes it, in ms (default 3600000).
    pub stale_after_ms: Option<f64>,
    /// Hear other processes' writes at once over one LISTEN connection per pool (a
    /// connection string, a `pg.Pool` or `pg.Client`, postgres.js; default true). Behind a
    /// pooler that cannot LISTEN (PgBouncer in transaction mode, Neon's or Supabase's
    /// pooled ports) give `listenUrl`, or the listener finds out it is deaf and closes
    /// itself; `false` skips LISTEN, and waiting readers look for other processes' writes
    /// every `pollIntervalMs`.
    pub listen: Option<bool>,
    /// How long a reader keeps trying after it lost the database (the connection, or a
    /// statement timed out) before `readFrom` throws, in ms (default 60000). It carries on
    /// from its cursor: no chunk missed or repeated.
    pub retry_reads_for_ms: Option<f64>,
    /// `false`: an append's commit does not wait for its WAL record to reach disk
    /// (`synchronous_commit = off` for that transaction alone; default true). A producer
    /// awaiting each append goes several times faster; a crash of the database server (not
    /// of the app) may lose the appends of its last fraction of a second (at most three
    /// times `wal_writer_delay`, 0.6 s by default), never corrupting anything: the stream
    /// then ends a few chunks short. create, stop, complete and fail stay durable.
    pub synchronous_commit: Option<bool>,
    /// How long the announcement of a chunk to other processes may wait to go out with
    /// the next ones, in ms (default 2; 0: each chunk's at once). Chunks appended back to
    /// back then wake a listener elsewhere once every `notifyBatchMs`, not once a chunk; a
    /// chunk appended after a pause is announced at once.
    pub notify_batch_ms: Option<f64>,
    /// Tables distributed with Citus (`migrate({ citus: true })`): `true` sends the
    /// statements Citus routes to one worker, `false` never; left out, the store finds
    /// out once per pool or client (docs/citus.md).
    pub citus: Option<bool>,
}

/// Options of `PostgresConversationStore` (as in `@aibind/postgres`).
#[napi(object)]
#[derive(Default)]
pub struct ConversationStoreOptions {
    /// Conversations table (default "aibind_conversations"); `name` or `schema.name`.
    pub table: Option<String>,
    /// How long a conversation is kept after its last save, in ms (default 1800000).
    pub ttl_ms: Option<f64>,
    /// Tables distributed with Citus (`migrate({ citus: true })`): `true` sends the
    /// statements Citus routes to one worker, `false` never; left out, the store finds
    /// out once per pool or client (docs/citus.md).
    pub citus: Option<bool>,
}

pub struct StreamSettings {
    pub chunks_table: String,
    pub status_table: String,
    /// The status table as wake-ups know it (`sql::wake_key`).
    pub wake_key: String,
    pub poll_interval: Duration,
    pub ttl_ms: i64,
    pub stale_after_ms: i64,
    pub listen: bool,
    pub retry_reads_for_ms: i64,
    /// Appends commit without waiting for the WAL flush.
    pub relaxed_appends: bool,
    /// How long a chunk's announcement may wait to go out with the next ones.
    pub notify_batch: Duration,
    pub citus: Option<bool>,
}

/// The longest `notifyBatchMs`: longer would be the lag of the original's polling.
const MOST_NOTIFY_BATCH_MS: f64 = 1_000.0;

impl StreamSettings {
    pub fn new(options: StreamStoreOptions) -> Result<Self> {
        let poll = millis("pollIntervalMs", options.poll_interval_ms, 100)?;
        if poll == 0 {
            return Err(Error::InvalidOption(
                "option \"pollIntervalMs\" must be greater than 0".into(),
            ));
        }
        let status_table = table("statusTable", options.status_table, "aibind_stream_status")?;
        let notify_batch = match options.notify_batch_ms {
            None => 2,
            Some(v) if v.fract() == 0.0 && (0.0..=MOST_NOTIFY_BATCH_MS).contains(&v) => v as u64,
            Some(v) => {
                return Err(Error::InvalidOption(format!(
                    "option \"notifyBatchMs\" must be a whole number of milliseconds from 0 to \
                     {MOST_NOTIFY_BATCH_MS}, got {v}"
                )))
            }
        };
        Ok(StreamSettings {
            chunks_table: table("chunksTable", options.chunks_table, "aibind_stream_chunks")?,
            wake_key: sql::wake_key(&status_table),
            status_table,
            poll_interval: Duration::from_millis(poll as u64),
            ttl_ms: millis("ttlMs", options.ttl_ms, 300_000)?,
            stale_after_ms: millis("staleAfterMs", options.stale_after_ms, 3_600_000)?,
            listen: options.listen.unwrap_or(true),
            retry_reads_for_ms: millis("retryReadsForMs", options.retry_reads_for_ms, 60_000)?,
            relaxed_appends: options.synchronous_commit == Some(false),
            notify_batch: Duration::from_millis(notify_batch),
            citus: options.citus,
        })
    }
}

pub struct ConversationSettings {
    pub table: String,
    pub ttl_ms: i64,
    pub citus: Option<bool>,
}

impl ConversationSettings {
    pub fn new(options: ConversationStoreOptions) -> Result<Self> {
        Ok(ConversationSettings {
            table: table("table", options.table, "aibind_conversations")?,
            ttl_ms: millis("ttlMs", options.ttl_ms, 1_800_000)?,
            citus: options.citus,
        })
    }
}

fn table(option: &str, value: Option<String>, default: &str) -> Result<String> {
    sql::table_name(option, value.as_deref().unwrap_or(default))
}

/// A duration option: a whole number of milliseconds, 0 or more, at most ten years.
fn millis(option: &str, value: Option<f64>, default: i64) -> Result<i64> {
    const MAX: f64 = 10.0 * 365.0 * 24.0 * 3600.0 * 1000.0;
    match value {
        None => Ok(default),
        Some(v) if v.fract() == 0.0 && (0.0..=MAX).contains(&v) => Ok(v as i64),
        Some(v) => Err(Error::InvalidOption(format!(
            "option \"{option}\" must be a whole number of milliseconds from 0 to {MAX}, got {v}"
        ))),
    }
}

/// Most bytes an id may have: PostgreSQL cannot index much longer keys.
const MAX_ID_BYTES: usize = 1024;

/// A stream id or session id: non-empty, at most 1 KiB, no NUL character.
pub fn check_id(what: &str, id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid_argument(format!(
            "{what} must be a non-empty string"
        )));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Error::invalid_argument(format!(
            "{what} is {} bytes long; at most {MAX_ID_BYTES} are allowed",
            id.len()
        )));
    }
    check_text(what, id)
}

/// Text PostgreSQL can store: TEXT cannot hold U+0000.
pub fn check_text(what: &str, text: &str) -> Result<()> {
    if text.contains('\0') {
        return Err(Error::invalid_argument(format!(
            "{what} contains a NUL character (U+0000), which PostgreSQL text cannot store"
        )));
    }
    Ok(())
}

/// `afterSeq` as the original reads it (`seq > afterSeq`): any number but NaN; a
/// fraction is floored, which selects the same chunks.
pub fn after_seq(value: f64) -> Result<i32> {
    if value.is_nan() {
        return Err(Error::invalid_argument(
            "afterSeq must be a number, got NaN",
        ));
    }
    Ok(value.floor().clamp(0.0, i32::MAX as f64) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original() {
        let s = StreamSettings::new(StreamStoreOptions::default()).unwrap();
        assert_eq!(s.chunks_table, "aibind_stream_chunks");
        assert_eq!(s.status_table, "aibind_stream_status");
        assert_eq!(s.poll_interval, Duration::from_millis(100));
        assert_eq!(s.ttl_ms, 300_000);
        let c = ConversationSettings::new(ConversationStoreOptions::default()).unwrap();
        assert_eq!(c.table, "aibind_conversations");
        assert_eq!(c.ttl_ms, 1_800_000);
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e300, 2.5] {
            let err = StreamSettings::new(StreamStoreOptions {
                ttl_ms: Some(bad),
                ..Default::default()
            })
            .err()
            .unwrap();
            assert_eq!(err.code(), "INVALID_OPTION");
        }
        let err = StreamSettings::new(StreamStoreOptions {
            poll_interval_ms: Some(0.0),
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(err.to_string().contains("pollIntervalMs"));
    }

    #[test]
    fn ids_and_seqs() {
        assert!(check_id("stream id", "ok").is_ok());
        assert!(check_id("stream id", "").is_err());
        assert!(check_id("stream id", "a\0b").is_err());
        assert!(check_id("stream id", &"x".repeat(1025)).is_err());
        assert_eq!(after_seq(-5.0).unwrap(), 0);
        assert_eq!(after_seq(2.7).unwrap(), 2);
        assert_eq!(after_seq(1e20).unwrap(), i32::MAX);
        assert_eq!(after_seq(f64::NEG_INFINITY).unwrap(), 0);
        assert!(after_seq(f64::NAN).is_err());
    }
}
