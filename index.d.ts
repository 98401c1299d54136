// Public types of @aibind-rs/postgres: those of @aibind/postgres, plus what this package
// adds (connection strings, close(), loadJSON/saveJSON, error codes).
import type { ChatHistory, ConversationMessage } from "@aibind/core";

/** What a client's `query` resolves to. */
export interface PostgresResult {
  rows: Array<Record<string, unknown>>;
}

/**
 * Anything with `query(sql, params)`: `pg.Pool` and `pg.Client` directly; postgres.js and
 * Neon through `wrapPostgresJs()` / `wrapNeon()`.
 */
export interface PostgresClient {
  query(sql: string, params?: unknown[]): Promise<PostgresResult>;
}

export interface StreamChunk {
  seq: number;
  data: string;
}

export interface DurableStreamStatus {
  state: "active" | "done" | "stopped" | "error";
  error?: string;
  totalChunks: number;
}

/** Options of the connection: the Rust pool's, and the time limit every store has. */
export interface PostgresPoolOptions {
  /**
   * Most connections of the Rust pool, a whole number from 1 to 1000 (default 10). Stores
   * built from the same connection string and pool options in one process share one pool.
   * Checked but not used with JS clients.
   */
  poolSize?: number;
  /** How long opening a connection of the Rust pool may take, in ms (default 10000). */
  connectTimeoutMs?: number;
  /**
   * How long one call may take, in ms, from the moment it is made (default 30000; 1 to
   * 86400000): waiting in a queue and for a free connection included. Then it rejects with
   * `QUERY_TIMEOUT` (or `CONNECTION_ERROR` when no connection was free); the statement is
   * cancelled and its connection dropped. With a connection string the server is told the
   * same limit (`statement_timeout`: set once per connection, or per statement with
   * `SET LOCAL` behind a transaction pooler).
   */
  queryTimeoutMs?: number;
  /**
   * How long a connection of the Rust pool may stay idle before it is closed, in ms
   * (default 10000, as pg.Pool; 0 keeps idle connections).
   */
  idleTimeoutMs?: number;
  /**
   * What sits between the Rust pool and PostgreSQL (default "auto": found out on each new
   * connection, and at the first lost named statement). "transaction": PgBouncer,
   * Supavisor (Supabase port 6543) or Neon's -pooler host in transaction mode; statements
   * go unnamed, each in a transaction of its own. "session" / "none": statements are
   * prepared once per connection.
   */
  pooler?: "auto" | "transaction" | "session" | "none";
  /**
   * A connection string used only for the LISTEN connection (a direct host, when the main
   * one goes through a transaction pooler, which cannot deliver notifications). Default:
   * the main connection string.
   */
  listenUrl?: string | URL;
}

/** What `store.stats()` reports. Pool fields are null with a JS client (its pool is its own). */
export interface PostgresStoreStats {
  backend: "rust-pool" | "js-client";
  /** "none", "session", "transaction", "auto" (not known yet), "none (detected)", "transaction (detected)". */
  pooler: string | null;
  /** `poolSize`. */
  maxSize: number | null;
  /** Connections open (in use + idle). */
  size: number | null;
  inUse: number | null;
  idle: number | null;
  /** Connections being opened. */
  opening: number | null;
  /** Calls waiting for a connection. */
  waiting: number | null;
  /** Connections the pool may hold right now (it grows on demand up to `maxSize`). */
  allowed: number | null;
  listener: "off" | "connecting" | "confirmed" | "deaf-polling";
  /** Readers of this pool waiting for chunks. */
  readersWaiting: number;
  statementsSent: number | null;
  notificationsSent: number | null;
  notificationsReceived: number | null;
  /** Connection attempts the server refused as full (53300); the calls waited instead. */
  connectionsRefused: number | null;
}

export interface PostgresStreamStoreOptions extends PostgresPoolOptions {
  /** Name of the chunks table, `name` or `schema.name` (default "aibind_stream_chunks"). */
  chunksTable?: string;
  /** Name of the status table, `name` or `schema.name` (default "aibind_stream_status"). */
  statusTable?: string;
  /** How often a waiting reader of an active stream looks for new chunks, in ms (default 100). */
  pollIntervalMs?: number;
  /** How long a finished stream is kept before cleanup, in ms, counted from when it finished (default 300000). */
  ttlMs?: number;
  /**
   * How long an active stream may go without an append, beyond `ttlMs`, before `cleanup()`
   * treats its writer as gone and removes it, in ms (default 3600000).
   */
  staleAfterMs?: number;
  /**
   * Hear other processes' writes at once over one LISTEN connection per pool (a
   * connection string, a pg.Pool or pg.Client, postgres.js; default true). Turn it off
   * behind a pooler that cannot LISTEN (PgBouncer in transaction mode, Neon's or
   * Supabase's pooled ports); readers then check for other processes' writes every
   * `pollIntervalMs`.
   */
  listen?: boolean;
  /**
   * How long a reader keeps trying after it lost the database (a retryable error) before
   * `readFrom` throws, in ms (default 60000). It carries on from its cursor: no chunk
   * missed or repeated.
   */
  retryReadsForMs?: number;
  /**
   * `false`: an append's commit does not wait for its WAL record to reach disk
   * (`synchronous_commit = off` for that transaction alone; default true). A producer that
   * awaits each append goes several times faster; a crash of the database server (not of
   * the app) may lose the appends of its last fraction of a second (at most three times
   * `wal_writer_delay`, 0.6 s by default) and never corrupts anything. create, stop,
   * complete and fail stay durable.
   */
  synchronousCommit?: boolean;
}

export interface PostgresConversationStoreOptions extends PostgresPoolOptions {
  /** Name of the conversations table, `name` or `schema.name` (default "aibind_conversations"). */
  table?: string;
  /** How long a conversation is kept after its last save, in ms (default 1800000). */
  ttlMs?: number;
}

/** The stable `err.code` of every error this package raises. */
export type PostgresStoreErrorCode =
  | "STREAM_EXISTS"
  | "STREAM_NOT_ACTIVE"
  | "INVALID_ARGUMENT"
  | "INVALID_OPTION"
  | "STORE_CLOSED"
  | "DATABASE_ERROR"
  | "CONNECTION_ERROR"
  | "CLIENT_ERROR"
  | "MALFORMED_RESULT"
  | "QUERY_TIMEOUT"
  | "OVERLOADED"
  | "APPEND_OUTCOME_UNKNOWN"
  | "MISSING_PEER_DEPENDENCY";

/** Every error this package raises is an instance of this class. */
export declare class PostgresStoreError extends Error {
  readonly name: "PostgresStoreError";
  readonly code: PostgresStoreErrorCode;
  /** The SQLSTATE PostgreSQL reported, e.g. "42P01" for a missing table. */
  readonly sqlState?: string;
  /**
   * Whether trying the same call again later, as it is, may succeed: the database was
   * away, full or too slow (never for authentication failures, a missing database or a
   * statement that is wrong).
   */
  readonly retryable: boolean;
  constructor(code: PostgresStoreErrorCode, message: string, options?: { sqlState?: string; retryable?: boolean; cause?: unknown });
}

/** A client, or a PostgreSQL connection string for a Rust pool that needs no JS driver. */
export type PostgresClientOrUrl = PostgresClient | string | URL;

/**
 * What a store accepts: a client or connection string, or none yet (`undefined`, `null`,
 * `""`: an unset `process.env.DATABASE_URL` while a framework builds). Without one the
 * store is still created, and every call rejects with INVALID_ARGUMENT saying so.
 */
export type MaybePostgresClientOrUrl = PostgresClientOrUrl | undefined | null;

export declare class PostgresStreamStore {
  constructor(client: MaybePostgresClientOrUrl, options?: PostgresStreamStoreOptions);
  /** Rejects with `Stream "<id>" already exists` (code STREAM_EXISTS) when the id is taken. */
  create(id: string): Promise<void>;
  /**
   * Resolves the chunk's seq (1-based, gapless) once it is stored, exactly once, at that
   * seq. Rejects only when it is not stored and never will be (`Stream "<id>" not found
   * or not active`, also when the stream was re-created since this store wrote to it),
   * or with APPEND_OUTCOME_UNKNOWN when the database could not be reached in time to
   * find out: appending the same chunk again is then safe. A stream's appends through
   * one store are stored in call order.
   */
  append(id: string, chunk: string): Promise<number>;
  /**
   * Aborts when the stream leaves `active` (stop, complete, fail, removed) through any
   * store in any process: pass it to the model call (`streamText({ abortSignal })`).
   */
  stopSignal(id: string): AbortSignal;
  /** Every chunk with seq > afterSeq, in order; waits while the stream is active. */
  readFrom(id: string, afterSeq: number): AsyncGenerator<StreamChunk, void, undefined>;
  getStatus(id: string): Promise<DurableStreamStatus | null>;
  stop(id: string): Promise<void>;
  complete(id: string): Promise<void>;
  fail(id: string, error: string): Promise<void>;
  /** Removes expired streams with all their chunks; resolves how many streams went. */
  cleanup(): Promise<number>;
  /** Releases the store's connection (a shared pool closes with its last store) and ends waiting readers. */
  close(): Promise<void>;
  /** The pool, the listener, waiting readers and counters now. */
  stats(): PostgresStoreStats;
  readonly closed: boolean;
}

export declare class PostgresConversationStore {
  constructor(client: MaybePostgresClientOrUrl, options?: PostgresConversationStoreOptions);
  /** The saved history, or a new empty one; needs @aibind/core installed. */
  load(sessionId: string): Promise<ChatHistory<ConversationMessage>>;
  /** Stores `chat.toJSON()`. */
  save(sessionId: string, chat: { toJSON(): string }): Promise<void>;
  delete(sessionId: string): Promise<void>;
  /** The stored JSON text of an unexpired session, or null; needs no @aibind/core. */
  loadJSON(sessionId: string): Promise<string | null>;
  /** Stores a history's JSON text as it is. */
  saveJSON(sessionId: string, json: string): Promise<void>;
  /** Removes expired conversations; resolves how many went. */
  cleanup(): Promise<number>;
  close(): Promise<void>;
  /** The pool and counters now. */
  stats(): PostgresStoreStats;
  readonly closed: boolean;
}

/** A postgres.js `sql` instance as a PostgresClient (prepared statements unless `prepare: false`). */
export declare function wrapPostgresJs(sql: {
  unsafe(query: string, params?: unknown[], options?: { prepare?: boolean }): PromiseLike<ArrayLike<unknown>>;
  options?: { prepare?: boolean };
}): PostgresClient;

/** A Neon serverless `sql` function as a PostgresClient. */
export declare function wrapNeon(
  sql:
    | ((query: string, params?: unknown[]) => Promise<unknown>)
    | { query(query: string, params?: unknown[]): Promise<unknown> },
): PostgresClient;

/** Table names for the schema tooling (the stores' defaults when left out). */
export interface SchemaOptions {
  /** Default "aibind_stream_chunks". */
  chunksTable?: string;
  /** Default "aibind_stream_status". */
  statusTable?: string;
  /** The conversations table (`table` of PostgresConversationStore); default "aibind_conversations". */
  conversationsTable?: string;
}

/**
 * The DDL of both stores' tables (the original's schema) for the chosen names, plus the
 * indexes on `expires_at` that keep `cleanup()` fast on large tables. Every statement is
 * idempotent (`IF NOT EXISTS`). For migration files (Drizzle, Prisma, plain SQL).
 */
export declare function schemaSql(options?: SchemaOptions): string;

/**
 * Creates what is missing of that schema through `client` (a connection string or any
 * PostgresClient), statement by statement; running it again changes nothing. Resolves
 * the statements it ran. The stores themselves never create tables.
 */
export declare function migrate(
  client: PostgresClientOrUrl,
  options?: SchemaOptions & PostgresPoolOptions,
): Promise<string[]>;
