//! All SQL text of the package, and the checking of table names that goes into it.
//!
//! Table names are pasted into the statements unquoted, exactly as the original package
//! does (so `My_Table` still folds to `my_table`), which is safe only because every name
//! is checked here first: a plain or schema-qualified identifier, nothing else.
//!
//! `statement.rs`: what a statement is (plain data); `tables.rs`: table names and the
//! schema; `stream.rs` and `conversation.rs`: each store's statements; `citus.rs`: what differs
//! on Citus.

pub mod citus;
mod conversation;
mod statement;
mod stream;
pub mod summary;
mod tables;

pub use conversation::ConversationSql;
pub use statement::{Combined, Kind, Statement};
pub use stream::{StreamSql, NOTIFY_CHANNEL, NOTIFY_MOST_BYTES, PAGE_ROWS, SMALL_CHUNK_BYTES};
pub use tables::{finish_key, schema, table_name, wake_key};

#[cfg(test)]
mod tests;
