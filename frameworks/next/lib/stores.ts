import { PostgresStreamStore } from "@aibind-rs/postgres";

// One store per process. DATABASE_URL may be unset while `next build` loads this module;
// the store is still created, and only a call fails.
export const store = new PostgresStreamStore(process.env.DATABASE_URL);
