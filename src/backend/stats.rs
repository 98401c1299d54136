//! What `store.stats()` reports: the pool, the listener, the readers and a few counters.

use std::sync::atomic::{AtomicU64, Ordering};

use napi_derive::napi;

/// Counters of a pool, since it was made.
#[derive(Debug, Default)]
pub struct Counters {
    pub statements: AtomicU64,
    pub notifications_sent: AtomicU64,
    pub notifications_received: AtomicU64,
}

/// A store's reads that may go to a replica (pages of `readFrom` read from the database,
/// conversation loads), by where they were served.
#[derive(Debug, Default)]
pub struct Reads {
    pub replica: AtomicU64,
    pub primary: AtomicU64,
    /// Of those served by the primary: the replica could not serve them (behind, not
    /// finished there, unreachable or resting after a failure).
    pub fell_back: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of a store's connection (`store.stats()`). With a JS client only
/// `backend` and `readersWaiting` say anything: the client's pool is its own.
#[napi(object)]
pub struct BackendStats {
    /// "rust-pool" (a connection string) or "js-client".
    pub backend: String,
    /// How statements run: "none", "session", "transaction", "auto" (not known yet),
    /// "none (detected)" or "transaction (detected)" (see `pooler`).
    pub pooler: Option<String>,
    /// Most connections the pool opens (`poolSize`).
    pub max_size: Option<u32>,
    /// Connections open now (in use and idle), and those being opened.
    pub size: Option<u32>,
    pub in_use: Option<u32>,
    pub idle: Option<u32>,
    pub opening: Option<u32>,
    /// Calls waiting for a connection.
    pub waiting: Option<u32>,
    /// Connections the pool may hold right now (it grows on demand up to `maxSize`).
    pub allowed: Option<u32>,
    /// The LISTEN connection: "off", "connecting", "confirmed" (its probe came back) or
    /// "deaf-polling" (it did not: closed, readers poll, tried again later).
    pub listener: String,
    /// Readers waiting for chunks (in the pool's shared check; with a JS client, none).
    pub readers_waiting: u32,
    pub statements_sent: Option<f64>,
    pub notifications_sent: Option<f64>,
    pub notifications_received: Option<f64>,
    /// Connection attempts the server refused as full (53300); the calls waited instead.
    pub connections_refused: Option<f64>,
    /// Reads (pages of `readFrom` read from the database, conversation loads) served by
    /// the read replica (`replicaUrl`); null without one.
    pub replica_reads: Option<f64>,
    /// Such reads served by the primary.
    pub primary_reads: f64,
    /// Of `primaryReads`, those the replica could not serve; null without a replica.
    pub replica_fallbacks: Option<f64>,
}

impl BackendStats {
    pub fn js_client() -> Self {
        BackendStats {
            backend: "js-client".into(),
            pooler: None,
            max_size: None,
            size: None,
            in_use: None,
            idle: None,
            opening: None,
            waiting: None,
            allowed: None,
            listener: "off".into(),
            readers_waiting: 0,
            statements_sent: None,
            notifications_sent: None,
            notifications_received: None,
            connections_refused: None,
            replica_reads: None,
            primary_reads: 0.0,
            replica_fallbacks: None,
        }
    }
}

pub fn read(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}
