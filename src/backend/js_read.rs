//! Reads through a JS client that has a replica client (the `replica` option, a second
//! `pg.Pool` or postgres.js): the replica's client first, within its share of the call's
//! time (`pool::replica_share`); rows the caller does not keep, or a failure, send the
//! read to the primary's client by the same deadline, from the replica's settle (on the
//! JS thread): the promise of the call adopts the primary's. As `route.rs` does for the
//! Rust pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use napi::bindgen_prelude::{JsValue, PromiseRaw, ToNapiValue};
use napi::{sys, Env};

use super::js::JsQuery;
use super::pool::{replica_share, REPLICA_REST};
use super::route::Route;
use super::rows::{Param, Row};
use super::stats::{Counters, Reads};
use crate::error::Result;
use crate::sql::Statement;

/// The replica's client for a read with a `route`, unless there is none; `Err`: the
/// replica rests after a failure, the read goes to the primary (a fallback).
fn replica_of(js: &JsQuery, route: Option<Route>) -> Option<Result<(Arc<JsQuery>, Route), Route>> {
    let replica = js.replica.clone()?;
    let route = route?;
    let resting = js
        .resting_until
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some_and(|until| Instant::now() < until);
    Some(if resting {
        Err(route)
    } else {
        Ok((replica, route))
    })
}

/// The replica did not serve the read: counted, and (`failed`) it rests.
fn fell_back(js: &JsQuery, reads: &Reads, on_primary: Option<Arc<AtomicBool>>, failed: bool) {
    if failed {
        *js.resting_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now() + REPLICA_REST);
    }
    Counters::add(&reads.fell_back);
    Counters::add(&reads.primary);
    if let Some(on_primary) = on_primary {
        on_primary.store(true, Ordering::Release);
    }
}

/// `JsQuery::run` for a read that may go to the replica's client.
pub(super) fn read<'env, T, F>(
    js: &Arc<JsQuery>,
    env: &'env Env,
    statement: &Statement,
    params: Vec<Param>,
    route: Option<Route>,
    reads: Arc<Reads>,
    decode: F,
) -> napi::Result<PromiseRaw<'env, T>>
where
    T: ToNapiValue + Send + 'static,
    F: FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
{
    let (replica, route) = match replica_of(js, route) {
        Some(Ok(use_it)) => use_it,
        resting => {
            if let Some(Err(route)) = resting {
                fell_back(js, &reads, route.on_primary, false);
            } else {
                Counters::add(&reads.primary);
            }
            return js.run(env, statement, params, None, decode);
        }
    };
    let started = Instant::now();
    let Route {
        keep,
        on_replica,
        on_primary,
    } = route;
    let (on_replica, replica_params) =
        on_replica.unwrap_or_else(|| (statement.clone(), params.clone()));
    let (primary, statement) = (js.clone(), statement.clone());
    let done = move |env: &Env, rows: Result<Vec<Row>>| -> napi::Result<sys::napi_value> {
        match rows {
            Ok(rows) if keep(&rows) => {
                Counters::add(&reads.replica);
                let value = decode(rows)?;
                // SAFETY: `env` is the live env of the JS thread this settle call runs on.
                unsafe { T::to_napi_value(env.raw(), value) }
            }
            rows => {
                fell_back(&primary, &reads, on_primary, rows.is_err());
                let left = primary.query_timeout.saturating_sub(started.elapsed());
                let promise = primary.run::<T, F>(env, &statement, params, Some(left), decode)?;
                Ok(promise.raw())
            }
        }
    };
    let share = replica_share(js.query_timeout);
    let returned = replica.call_rows(env, &on_replica, replica_params, Some(share), done)?;
    // SAFETY: a live value of this env; the adapter always returns a promise.
    unsafe {
        <PromiseRaw<T> as napi::bindgen_prelude::FromNapiValue>::from_napi_value(
            env.raw(),
            returned,
        )
    }
}

/// `JsQuery::start` for a read that may go to the replica's client.
pub(super) fn start(
    js: &Arc<JsQuery>,
    env: &Env,
    statement: &Statement,
    params: Vec<Param>,
    route: Option<Route>,
    reads: Arc<Reads>,
    done: impl FnOnce(Result<Vec<Row>>) + Send + 'static,
) -> napi::Result<()> {
    let (replica, route) = match replica_of(js, route) {
        Some(Ok(use_it)) => use_it,
        resting => {
            if let Some(Err(route)) = resting {
                fell_back(js, &reads, route.on_primary, false);
            } else {
                Counters::add(&reads.primary);
            }
            return js.start(env, statement, params, done);
        }
    };
    let Route {
        keep,
        on_replica,
        on_primary,
    } = route;
    let (on_replica, replica_params) =
        on_replica.unwrap_or_else(|| (statement.clone(), params.clone()));
    let (primary, statement) = (js.clone(), statement.clone());
    let settled = move |env: &Env, rows: Result<Vec<Row>>| -> napi::Result<sys::napi_value> {
        match rows {
            Ok(rows) if keep(&rows) => {
                Counters::add(&reads.replica);
                done(Ok(rows));
            }
            rows => {
                fell_back(&primary, &reads, on_primary, rows.is_err());
                primary.start(env, &statement, params, done)?;
            }
        }
        // SAFETY: `env` is the live env of the JS thread this settle call runs on.
        unsafe { <()>::to_napi_value(env.raw(), ()) }
    };
    let share = replica_share(js.query_timeout);
    replica
        .call_rows(env, &on_replica, replica_params, Some(share), settled)
        .map(|_| ())
}
