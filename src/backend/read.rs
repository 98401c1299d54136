//! Reads that may go to the read replica (`replicaUrl`, `pool/replica.rs`): a reader's
//! page and a conversation load. The caller says what it would keep of the replica's rows
//! (`Route::keep`); anything else, and every read without a replica, goes to the primary
//! by the call's deadline. Each read is counted where it was served (`stats.rs`'s
//! `Reads`).

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::Env;

use super::db::{Backend, Db, Started};
use super::js_read;
use super::route::{routed, Route};
use super::rows::{Param, Row};
use crate::error::Result;
use crate::sql::Statement;

impl Db {
    /// Whether reads may go to a replica (`replicaUrl` was given).
    pub fn has_replica(&self) -> bool {
        match self.backend() {
            Ok(Backend::Pool(pool)) => pool.replica().is_some(),
            Ok(Backend::Js(js)) => js.replica.is_some(),
            Err(_) => false,
        }
    }

    /// `run` for a read: on the replica if `route` keeps its rows, else on the primary.
    pub fn read<'env, T, F>(
        &self,
        env: &'env Env,
        statement: &Statement,
        params: Vec<Param>,
        route: Option<Route>,
        decode: F,
    ) -> napi::Result<PromiseRaw<'env, T>>
    where
        T: ToNapiValue + Send + 'static,
        F: FnOnce(Vec<Row>) -> Result<T> + Send + 'static,
    {
        match self.backend()? {
            // Without a replica to try, a read runs as any statement does (combined with
            // others, in its Citus form, traced), on the primary.
            Backend::Pool(pool) if route.is_none() || pool.replica().is_none() => {
                crate::backend::stats::Counters::add(&self.reads.primary);
                self.run(env, statement, params, decode)
            }
            Backend::Pool(pool) => {
                let deadline = pool.conns().deadline();
                let (statement, reads) = (statement.clone(), self.reads.clone());
                let call = vec![crate::telemetry::current_call()];
                env.spawn_future(crate::telemetry::with_calls(call, async move {
                    let rows = routed(&pool, &reads, &statement, &params, route, deadline).await?;
                    Ok(decode(rows)?)
                }))
            }
            Backend::Js(js) => js_read::read(
                &js,
                env,
                statement,
                params,
                route,
                self.reads.clone(),
                decode,
            ),
        }
    }

    /// `start` for a read (see `read`).
    pub fn start_read(
        &self,
        env: &Env,
        statement: &Statement,
        params: Vec<Param>,
        route: Option<Route>,
    ) -> Option<Started> {
        self.start_routed(env, statement, params, Some(route))
    }
}
