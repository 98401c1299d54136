//! How an error crosses into JS: a napi error whose message is `MARK` followed by JSON
//! (see `mod.rs`), and how a napi failure reading a client's result becomes an error.

use super::Error;

/// Marks a napi error message that carries a store error as JSON.
pub(super) const MARK: char = '\u{1f}';

impl Error {
    /// The JSON that crosses into JS (see the module's doc).
    fn to_json(&self) -> String {
        let mut out = serde_json::json!({
            "code": self.code(),
            "message": self.to_string(),
            "retryable": self.retryable(),
        });
        if self.outcome_unknown() {
            out["unknown"] = true.into();
        }
        if self.own_limit() {
            out["ownLimit"] = true.into();
        }
        if let Some(state) = self.sql_state() {
            out["sqlState"] = state.into();
        }
        out.to_string()
    }
}

/// A napi call failed while reading what the client's `query` returned.
impl From<napi::Error> for Error {
    fn from(err: napi::Error) -> Self {
        Error::MalformedResult(format!(
            "could not read the client's query result: {}",
            err.reason
        ))
    }
}

impl From<Error> for napi::Error {
    fn from(err: Error) -> Self {
        napi::Error::new(
            napi::Status::GenericFailure,
            format!("{MARK}{}", err.to_json()),
        )
    }
}
