import { PostgresStreamStore } from "@aibind-rs/postgres";
import { env } from "$env/dynamic/private";

// One store per process: module scope, not per request. DATABASE_URL may be unset while
// `vite build` imports this module; the store is still created, and only a call fails.
export const store = new PostgresStreamStore(env.DATABASE_URL);
