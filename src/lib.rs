//! `@aibind-rs/postgres`: durable, resumable LLM token streams and chat histories in
//! PostgreSQL, as a native drop-in for `@aibind/postgres`.
//!
//! How a chunk travels from `append` to every reader is told in `ARCHITECTURE.md`.

mod backend;
mod clock;
mod conversation_store;
mod error;
#[cfg(feature = "noop")]
mod noop;
mod options;
mod reader;
mod sql;
mod stream_store;
mod wakeups;

pub use conversation_store::NativeConversationStore;
pub use reader::{NativeStreamReader, StreamPage};
pub use stream_store::{DurableStreamStatus, NativeStreamStore};
