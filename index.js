// The ESM entry of @aibind-rs/postgres: the same objects as the CommonJS entry
// (index.cjs), so an app that mixes import and require shares one set of stores and pools.
import cjs from "./index.cjs";

export const {
  PostgresStoreError,
  PostgresStreamStore,
  PostgresConversationStore,
  wrapPostgresJs,
  wrapNeon,
  schemaSql,
  migrate,
} = cjs;
