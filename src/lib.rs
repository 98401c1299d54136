//! `@aibind-rs/postgres`: durable, resumable LLM token streams and chat histories in
//! PostgreSQL, as a native drop-in for `@aibind/postgres`.
//!
//! How a chunk travels from `append` to every reader is told in `ARCHITECTURE.md`.

mod backend;
mod clock;
mod conversation_saved;
mod conversation_store;
mod error;
#[cfg(feature = "noop")]
mod noop;
mod options;
mod reader;
mod schema;
mod sent_appends;
mod sql;
mod stream_shared;
mod stream_store;
mod tail;
mod telemetry;
mod waker;
mod wakeups;
mod written_here;

pub use conversation_store::NativeConversationStore;
pub use reader::{NativeStreamReader, StreamPage};
pub use schema::{schema_statements, SchemaOptions};
pub use stream_store::{DurableStreamStatus, NativeStreamStore};
pub use telemetry::{
    telemetry_call, telemetry_enabled, telemetry_lag, telemetry_sink, TelemetryRecord,
};

/// The tokio runtime the Rust pool runs on: one worker thread. Every connection's task
/// and every query's task then run on the same thread, so a statement costs one wake-up
/// of that thread and one of the JS thread, never a hand-off between workers.
#[cfg(not(feature = "noop"))]
#[napi_derive::module_init]
fn init() {
    if let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("aibind-postgres")
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
    }
}
