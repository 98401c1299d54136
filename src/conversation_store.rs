//! `PostgresConversationStore`'s native half. It stores and returns the JSON text of a
//! chat history; `index.js` turns it into `@aibind/core`'s `ChatHistory`.

use std::sync::Arc;

use napi::bindgen_prelude::Reference;
use napi_derive::napi;

use crate::backend::{missing, Db, NativeBackend, Param};
use crate::clock::now_ms;
use crate::error::Result;
use crate::options::{check_id, check_text, ConversationSettings, ConversationStoreOptions};
use crate::sql::ConversationSql;

#[napi]
pub struct NativeConversationStore {
    db: Arc<Db>,
    sql: ConversationSql,
    ttl_ms: i64,
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
            sql: ConversationSql::new(&settings.table),
            ttl_ms: settings.ttl_ms,
        })
    }

    /// The stored JSON of an unexpired session, or `null`.
    #[napi(js_name = "loadJSON")]
    pub async fn load_json(&self, session_id: String) -> Result<Option<String>> {
        check_id("sessionId", &session_id)?;
        let mut rows = self
            .db
            .query(
                &self.sql.load,
                vec![Param::Text(session_id), Param::BigInt(now_ms())],
            )
            .await?;
        match rows.first_mut() {
            None => Ok(None),
            Some(row) => Ok(Some(
                row.take_text(0).ok_or_else(|| missing(&self.sql.load, 0))?,
            )),
        }
    }

    #[napi(js_name = "saveJSON")]
    pub async fn save_json(&self, session_id: String, json: String) -> Result<()> {
        check_id("sessionId", &session_id)?;
        check_text("the conversation JSON", &json)?;
        let expires = now_ms() + self.ttl_ms;
        self.db
            .query(
                &self.sql.save,
                vec![
                    Param::Text(session_id),
                    Param::Text(json),
                    Param::BigInt(expires),
                ],
            )
            .await?;
        Ok(())
    }

    #[napi]
    pub async fn delete(&self, session_id: String) -> Result<()> {
        check_id("sessionId", &session_id)?;
        self.db
            .query(&self.sql.delete, vec![Param::Text(session_id)])
            .await?;
        Ok(())
    }

    /// Removes expired conversations; resolves how many.
    #[napi]
    pub async fn cleanup(&self) -> Result<u32> {
        let rows = self
            .db
            .query(&self.sql.cleanup, vec![Param::BigInt(now_ms())])
            .await?;
        Ok(rows.first().and_then(|r| r.int(0)).unwrap_or(0) as u32)
    }

    #[napi]
    pub fn close(&self) {
        self.db.close();
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.db.is_closed()
    }
}
