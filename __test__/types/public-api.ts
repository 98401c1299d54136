// Compiled by `tsc` in types.test.ts: the public types line up with @aibind/postgres and
// with the interfaces of @aibind/core (as docs/contract.md lists them), and with the real types
// of pg, postgres.js and a Neon-shaped function.
import type { ChatHistory, ConversationMessage } from "@aibind/core";
import { neon } from "@neondatabase/serverless";
import pg from "pg";
import postgres from "postgres";
import {
  migrate,
  PostgresConversationStore,
  PostgresStreamStore,
  wrapNeon,
  wrapPostgresJs,
  type DurableStreamStatus,
  type PostgresClient,
  type PostgresConversationStoreOptions,
  type PostgresResult,
  type PostgresStoreError,
  type PostgresStreamStoreOptions,
  type StreamChunk,
} from "../../index.js";

interface StreamStore {
  create(id: string): Promise<void>;
  append(id: string, chunk: string): Promise<number>;
  readFrom(id: string, afterSeq: number): AsyncGenerator<StreamChunk, void, undefined>;
  getStatus(id: string): Promise<DurableStreamStatus | null>;
  stop(id: string): Promise<void>;
  complete(id: string): Promise<void>;
  fail(id: string, error: string): Promise<void>;
}
interface ConversationStore {
  load(sessionId: string): Promise<ChatHistory<ConversationMessage>>;
  save(sessionId: string, chat: ChatHistory<ConversationMessage>): Promise<void>;
  delete(sessionId: string): Promise<void>;
}

const pool = new pg.Pool();
const client = new pg.Client();
const s: StreamStore = new PostgresStreamStore(pool);
const s2: StreamStore = new PostgresStreamStore(client, {
  chunksTable: "a",
  statusTable: "b",
  pollIntervalMs: 50,
  ttlMs: 1,
});
const s3: StreamStore = new PostgresStreamStore(wrapPostgresJs(postgres()));
const s4: StreamStore = new PostgresStreamStore(
  wrapNeon(async (_q: string, _p?: unknown[]) => [] as Record<string, unknown>[]),
);
const s5: StreamStore = new PostgresStreamStore("postgres://localhost/db", { poolSize: 4 });
const s6: StreamStore = new PostgresStreamStore(wrapNeon(neon("postgres://u:p@host/db")));
const c: ConversationStore = new PostgresConversationStore(pool, { table: "t", ttlMs: 5 });
const c2: ConversationStore = new PostgresConversationStore(new URL("postgres://localhost/db"));
const asClient: PostgresClient = pool;
const result: Promise<PostgresResult> = asClient.query("SELECT 1", []);

const streamOptions: PostgresStreamStoreOptions = { chunksTable: "x", staleAfterMs: 1, citus: true };
const conversationOptions: PostgresConversationStoreOptions = { table: "x", citus: false };
const distributed: Promise<string[]> = migrate("postgres://localhost/db", { citus: true });
const replicaConversation: PostgresConversationStoreOptions = {
  table: "x",
  replicaUrl: new URL("postgres://replica/db"),
};
// A read replica: a connection string's, or a JS client's own client of it.
const replicated = new PostgresStreamStore("postgres://primary/db", { replicaUrl: "postgres://replica/db" });
const replicatedPool = new PostgresStreamStore(pool, { replica: new pg.Pool() });
const replicaReads: number | null = replicated.stats().replicaReads;
const primaryReads: number = replicatedPool.stats().primaryReads;
const fallbacks: number | null = replicatedPool.stats().replicaFallbacks;

async function usage(store: PostgresStreamStore, err: unknown) {
  for await (const chunk of store.readFrom("id", 0)) {
    const seq: number = chunk.seq;
    const data: string = chunk.data;
    void seq;
    void data;
  }
  const status = await store.getStatus("id");
  if (status) {
    const state: "active" | "done" | "stopped" | "error" = status.state;
    const error: string | undefined = status.error;
    void state;
    void error;
  }
  const removed: number = await store.cleanup();
  await store.close();
  const e = err as PostgresStoreError;
  if (e.code === "STREAM_EXISTS" || e.sqlState === "23505") void removed;
  // @ts-expect-error: not an error code of this package
  if (e.code === "NOT_A_CODE") void 0;
  // @ts-expect-error: a number is not a client
  new PostgresStreamStore(42);
  // @ts-expect-error: unknown option
  new PostgresStreamStore(pool, { chunkTable: "typo" });
  // @ts-expect-error: a replica's client is a client, not a number
  new PostgresStreamStore(pool, { replica: 42 });
}

void [
  s,
  s2,
  s3,
  s4,
  s5,
  s6,
  c,
  c2,
  result,
  streamOptions,
  conversationOptions,
  replicaConversation,
  distributed,
  usage,
  replicaReads,
  primaryReads,
  fallbacks,
  replicated,
  replicatedPool,
];
