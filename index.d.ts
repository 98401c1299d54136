// Public types of @aibind-rs/postgres: those of @aibind/postgres, plus what this package
// adds (connection strings, close(), loadJSON/saveJSON, error codes).
import type { ChatHistory, ConversationMessage } from "@aibind/core";
// The options the native side takes are documented once, in Rust (src/options.rs), and
// reach here through the generated binding.d.ts; the README documents them for users.
import type {
  ConversationStoreOptions,
  PoolOptions,
  SchemaOptions as NativeSchemaOptions,
  StreamStoreOptions,
} from "./binding.js";

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
export interface PostgresPoolOptions
  extends Pick<PoolOptions, "poolSize" | "connectTimeoutMs" | "queryTimeoutMs" | "idleTimeoutMs" | "listenHeartbeatMs"> {
  /** What sits between the Rust pool and PostgreSQL (see `PoolOptions.pooler`). */
  pooler?: "auto" | "transaction" | "session" | "none";
  /** A connection string used only for the LISTEN connection (see `PoolOptions.listenUrl`). */
  listenUrl?: string | URL;
  /**
   * A read replica's connection string (a streaming standby of the same database):
   * replays of finished streams and conversation loads that cannot be older there are
   * read from it (see `PoolOptions.replicaUrl`, docs/replicas.md).
   */
  replicaUrl?: string | URL;
  /**
   * With a JS client as the store's client: a client of a read replica (a second
   * `pg.Pool`, `wrapPostgresJs(sql)`), which serves the same reads as `replicaUrl` does.
   */
  replica?: PostgresClient;
  /**
   * Put the stream or session id into the context of the store's diagnostics channel
   * events (`aibind-rs:stream:append`, ...; default false: no ids, values or text).
   */
  diagnosticIds?: boolean;
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
  /**
   * This store's reads that may go to a replica (pages of `readFrom` read from the
   * database, conversation loads) served by the replica (`replicaUrl`); null without one.
   */
  replicaReads: number | null;
  /** Such reads served by the primary. */
  primaryReads: number;
  /** Of `primaryReads`, those the replica could not serve (behind, not finished there, unreachable); null without a replica. */
  replicaFallbacks: number | null;
}

export interface PostgresStreamStoreOptions extends PostgresPoolOptions, StreamStoreOptions {}

export interface PostgresConversationStoreOptions extends PostgresPoolOptions, ConversationStoreOptions {}

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
  | "STREAM_WENT_BACK"
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
/** Table names: `chunksTable`, `statusTable`, `conversationsTable`; `citus: true` also distributes them (docs/citus.md). */
export interface SchemaOptions extends NativeSchemaOptions {}

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
