//! Whether a backend's database has Citus, found out once per pool or JS client: on
//! Citus a store sends each statement's Citus form (`sql/citus.rs`) and the pool never
//! combines calls (a combined statement spans several streams, so several shards).

use super::db::{Backend, Db};
use super::rows::Row;

impl Db {
    /// Whether the database is known to have Citus.
    pub fn on_citus(&self) -> bool {
        match self.backend() {
            Ok(Backend::Pool(pool)) => pool.citus.known() == Some(true),
            Ok(Backend::Js(js)) => js.citus.known() == Some(true),
            Err(_) => false,
        }
    }

    pub fn set_citus(&self, citus: bool) {
        match self.backend() {
            Ok(Backend::Pool(pool)) => pool.citus.set(citus),
            Ok(Backend::Js(js)) => js.citus.set(citus),
            Err(_) => {}
        }
    }

    /// Takes the answer of `sql::citus::detect()` for this backend; whether it is Citus.
    pub fn citus_found(&self, rows: &[Row]) -> bool {
        match self.backend() {
            Ok(Backend::Pool(pool)) => pool.citus.set_from(rows),
            Ok(Backend::Js(js)) => js.citus.set_from(rows),
            Err(_) => false,
        }
    }
}
