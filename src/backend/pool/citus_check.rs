//! The pool asks its database once whether it has Citus (`backend/citus.rs`).

use super::SharedPool;
use crate::sql;

impl SharedPool {
    /// Whether the pool's database has Citus: asked once (`sql::citus::detect`), then known.
    /// Not known when asking fails: the statement then goes in its plain form.
    pub async fn on_citus(&self, deadline: tokio::time::Instant) -> bool {
        if let Some(known) = self.citus.known() {
            return known;
        }
        match self.query(&sql::citus::detect(), &[], deadline).await {
            Ok(rows) => self.citus.set_from(&rows),
            Err(_) => false,
        }
    }
}
