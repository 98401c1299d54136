/** A PgBouncer of a test's own (see pgbouncer.mjs). */
export interface PgBouncer {
  /** The target URL with PgBouncer's host and port. */
  url: string;
  port: number;
  /** PgBouncer's admin console (SHOW CLIENTS, ...), as the target's user. */
  adminUrl: string;
  mode: "transaction" | "session";
  /** Stops PgBouncer and removes its files. */
  stop(): Promise<void>;
  /** PgBouncer's log so far. */
  log(): string;
}

export function startPgBouncer(options: {
  target: string;
  mode?: "transaction" | "session";
  settings?: Record<string, string>;
}): Promise<PgBouncer>;

export function pgbouncerBinary(): string;
