//! What a stream store shares with its readers: the store's connection (`Db`), its
//! statements and its settings. Its own module, so that the store (`stream_store.rs`) and
//! the reader (`reader/`) both depend on it and neither on the other's internals.

use std::sync::Arc;

use crate::backend::Db;
use crate::options::StreamSettings;
use crate::sql::StreamSql;
use crate::waker::Waker;

/// What a store's readers share with it.
pub struct StreamShared {
    pub db: Arc<Db>,
    pub sql: StreamSql,
    pub settings: StreamSettings,
    /// Wakes the store's waiting readers in JS, all in one call (`waker.rs`).
    pub waker: Waker,
}
