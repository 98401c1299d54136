//! Only in `cargo test --features noop`, the napi-rs way of unit-testing without Node:
//! napi-derive then generates no conversions, so the result types the stores hand to
//! JS get stand-ins that are never called (the unit tests touch no JS).

use napi::bindgen_prelude::ToNapiValue;
use napi::sys::{napi_env, napi_value};

use crate::reader::StreamPage;
use crate::stream_store::{AppendLookup, DurableStreamStatus};
use crate::telemetry::TelemetryRecord;

macro_rules! never_converted {
    ($($ty:ty),*) => {$(
        impl ToNapiValue for $ty {
            // SAFETY: never called (nothing reaches JS in the noop build); it touches
            // no pointer.
            unsafe fn to_napi_value(_: napi_env, _: Self) -> napi::Result<napi_value> {
                unreachable!("the noop build never converts values to JS")
            }
        }
    )*};
}

never_converted!(
    StreamPage,
    DurableStreamStatus,
    AppendLookup,
    TelemetryRecord
);
