//! `PostgresConversationStore`'s native half. It stores and returns the JSON text of a
//! chat history; `index.cjs` turns it into `@aibind/core`'s `ChatHistory`.

use std::sync::Arc;

use napi::bindgen_prelude::{PromiseRaw, Reference};
use napi::Env;
use napi_derive::napi;

use crate::backend::{missing, Db, NativeBackend, Param, Route, Row};
use crate::clock::now_ms;
use crate::conversation_saved::{LoadFrom, Saved, Write};
use crate::options::{check_id, check_text, ConversationSettings, ConversationStoreOptions};
use crate::sql::ConversationSql;

#[napi]
pub struct NativeConversationStore {
    db: Arc<Db>,
    sql: ConversationSql,
    ttl_ms: i64,
    /// With a read replica: what this store wrote, for loads there (`conversation_saved.rs`).
    saved: Arc<Saved>,
}

/// A write of a session in flight: ended with its transaction id when its row comes
/// back, or as not known when it fails (dropped without one).
struct Noting(Option<Write>, Arc<Saved>);

impl Noting {
    fn written(mut self, rows: &[Row]) {
        let xid = rows.first().and_then(|r| r.text(0)?.parse().ok());
        if let Some(write) = self.0.take() {
            self.1.end(write, xid);
        }
    }
}

impl Drop for Noting {
    fn drop(&mut self) {
        if let Some(write) = self.0.take() {
            self.1.end(write, None);
        }
    }
}

#[napi]
impl NativeConversationStore {
    #[napi(constructor)]
    pub fn new(
        backend: Reference<NativeBackend>,
        options: Option<ConversationStoreOptions>,
    ) -> napi::Result<Self> {
        let settings = ConversationSettings::new(options.unwrap_or_default())?;
        Ok(NativeConversationStore {
            db: backend.db.clone(),
            sql: ConversationSql::new(&settings.table).forced(settings.citus),
            ttl_ms: settings.ttl_ms,
            saved: Arc::default(),
        })
    }

    /// The combined forms of load and save, for a JS client's calls made while one of
    /// their kind is in flight (`lib/lane.cjs`), and the ttl a save sets; none on Citus
    /// (where a statement touches one session's shard only).
    #[napi(getter)]
    pub fn combined_forms(&self) -> Option<CombinedForms> {
        let (Some(load), Some(save)) = (&self.sql.load.combined, &self.sql.save.combined) else {
            return None;
        };
        if self.db.on_citus() {
            return None;
        }
        Some(CombinedForms {
            load: load.statement.text.to_string(),
            save: save.statement.text.to_string(),
            ttl_ms: self.ttl_ms as f64,
        })
    }

    /// The stored JSON of an unexpired session, or `null`.
    #[napi(js_name = "loadJSON")]
    pub fn load_json<'env>(
        &self,
        env: &'env Env,
        session_id: String,
    ) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        check_id("sessionId", &session_id)?;
        let statement = self.sql.load.clone();
        let route = self.route(&session_id);
        let params = vec![Param::Text(session_id), Param::BigInt(now_ms())];
        let route = route.map(|(xid, floor)| Route {
            on_replica: Some((self.sql.load_on_replica.clone(), {
                let mut on_replica = params.clone();
                on_replica.extend([xid, floor]);
                on_replica
            })),
            // The replica's snapshot did not see this store's last write of the session.
            ..Route::new(|rows| rows.iter().all(|row| row.int(1) != Some(1)))
        });
        self.db.read(
            env,
            &self.sql.load,
            params,
            route,
            move |mut rows| match rows.first_mut() {
                None => Ok(None),
                Some(row) => Ok(Some(
                    row.take_text(0).ok_or_else(|| missing(&statement, 0))?,
                )),
            },
        )
    }

    #[napi(js_name = "saveJSON")]
    pub fn save_json<'env>(
        &self,
        env: &'env Env,
        session_id: String,
        json: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        check_id("sessionId", &session_id)?;
        check_text("the conversation JSON", &json)?;
        let expires = now_ms() + self.ttl_ms;
        let noting = self.noting(&session_id);
        let params = vec![
            Param::Text(session_id),
            Param::Text(json),
            Param::BigInt(expires),
        ];
        match noting {
            None => self.db.run(env, &self.sql.save, params, |_| Ok(())),
            Some(noting) => self
                .db
                .run(env, &self.sql.save_noting, params, move |rows| {
                    noting.written(&rows);
                    Ok(())
                }),
        }
    }

    #[napi]
    pub fn delete<'env>(
        &self,
        env: &'env Env,
        session_id: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        check_id("sessionId", &session_id)?;
        let noting = self.noting(&session_id);
        let params = vec![Param::Text(session_id)];
        match noting {
            None => self.db.run(env, &self.sql.delete, params, |_| Ok(())),
            Some(noting) => self
                .db
                .run(env, &self.sql.delete_noting, params, move |rows| {
                    noting.written(&rows);
                    Ok(())
                }),
        }
    }

    /// Removes expired conversations; resolves how many. (No read-your-writes note: what
    /// it removes had expired, and a load filters expired rows out on either node.)
    #[napi]
    pub fn cleanup<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, u32>> {
        let params = vec![Param::BigInt(now_ms())];
        self.db.run(env, &self.sql.cleanup, params, |rows| {
            Ok(rows.first().and_then(|r| r.int(0)).unwrap_or(0) as u32)
        })
    }

    /// Resolves once a pool no other store uses has closed its connections.
    #[napi]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        crate::backend::close(env, &self.db)
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.db.is_closed()
    }
}

/// `NativeConversationStore::combined_forms`: load's parameters are the session ids and
/// the times now (ms); save's the session ids, the JSON texts and the expiries (ms).
#[napi(object)]
pub struct CombinedForms {
    pub load: String,
    pub save: String,
    pub ttl_ms: f64,
}

impl NativeConversationStore {
    /// With a read replica: a write of `session` begins, to be noted when it ends.
    fn noting(&self, session: &str) -> Option<Noting> {
        self.db
            .has_replica()
            .then(|| Noting(Some(self.saved.begin(session)), self.saved.clone()))
    }

    /// With a read replica: whether a load of `session` may go there, and the
    /// transaction (and floor) its snapshot must see, as parameters.
    fn route(&self, session: &str) -> Option<(Param, Param)> {
        if !self.db.has_replica() {
            return None;
        }
        let param = |xid: Option<u64>| Param::OptText(xid.map(|x| x.to_string()));
        match self.saved.load_from(session) {
            LoadFrom::Primary => None,
            LoadFrom::Replica { xid, floor } => Some((param(xid), param(floor))),
        }
    }
}
