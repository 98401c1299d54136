// The LISTEN connection of one JS client object (a pg.Pool, a pg.Client, or postgres.js
// through wrapPostgresJs), as the Rust pool's listener does it (src/backend/notify.rs):
//
// - pg: a `pg.Client` of our own, made with the client's own Client class and connection
//   options, outside the caller's pool (it takes none of its connections). Its socket and
//   our timers are unref'd: an open listener never keeps the process alive.
// - postgres.js: `sql.listen(channel, onNotify, onListen)`, on postgres.js's own listen
//   connection, which postgres.js opens again by itself when it is lost (then calls
//   onListen again).
// - Neon's HTTP driver (and any other `{ query }`) cannot LISTEN: `connectorFor` gives null.
//
// Right after LISTEN the listener sends itself a probe through the caller's client; only
// once it comes back is it "confirmed". A probe that does not come back within 3 s means a
// listener that hears nothing (PgBouncer in transaction mode accepts LISTEN and never
// delivers): it UNLISTENs, closes, and is "deaf-polling" until it tries again after 30 s,
// doubling to 10 min. A lost connection is opened again with back-off (50 ms doubling to
// 5 s); after every LISTEN every reader looks again from its own cursor (`wakeAll`).
"use strict";

/** `sql::NOTIFY_CHANNEL`. */
const CHANNEL = "aibind_stream_writes";
const PROBE_AGAIN_MS = 500;
const DEAF_AFTER_MS = 3_000;
const DEAF_RETRY_MS = 30_000;
const DEAF_RETRY_AT_MOST_MS = 600_000;
const BACKOFF_FIRST_MS = 50;
const BACKOFF_AT_MOST_MS = 5_000;
/** A connection attempt that takes longer is given up (and tried again). */
const CONNECT_WITHIN_MS = 10_000;
const UNLISTEN_WITHIN_MS = 1_000;

/** Where wrapPostgresJs keeps the `sql` instance it wraps. */
const POSTGRES_JS = Symbol.for("@aibind-rs/postgres.sql");

/**
 * Probe numbers of JS listeners, unique in the process. They start at 2^31 so that they
 * never meet the Rust pools' probes (which count from 0 and share the channel).
 */
let probes = 2 ** 31;
function nextProbe() {
  const n = probes;
  probes = probes + 1 >= 2 ** 32 ? 2 ** 31 : probes + 1;
  return n;
}

const noop = () => {};

/** `promise`, or a rejection once `ms` have passed without it settling. */
function within(promise, ms) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`aibind-rs: no answer within ${ms} ms`)), ms);
      timer.unref?.();
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The postgres.js `sql` instance behind a wrapPostgresJs client, if it is one. */
function postgresJsOf(client) {
  const sql = client?.[POSTGRES_JS];
  return typeof sql?.listen === "function" ? sql : undefined;
}

/**
 * How to open a LISTEN session for `client`, or null when it cannot LISTEN. A session is
 * `open({ notified(payload), listening(), lost() })` → Promise<{ unlisten(), close() }>:
 * `listening` is called after every LISTEN (postgres.js calls it again after it
 * reconnected by itself), `lost` once when the connection is gone.
 */
function connectorFor(client) {
  const sql = postgresJsOf(client);
  if (sql) return (handlers) => openPostgresJs(sql, handlers);
  if (client === null || typeof client !== "object") return null;
  // A pg.Pool: a Client of its own class, with the pool's own options (as pg-pool makes
  // its clients; `password` is a hidden property of that object, so it goes as it is).
  if (
    typeof client.Client === "function" &&
    typeof client.totalCount === "number" &&
    typeof client.options === "object"
  ) {
    return (handlers) => openPg(client.Client, client.options, handlers);
  }
  // A pg.Client: another of its class, with its connection parameters.
  if (typeof client.connectionParameters === "object" && typeof client.constructor === "function") {
    return (handlers) => openPg(client.constructor, client.connectionParameters, handlers);
  }
  return null;
}

function unrefSocket(c) {
  try {
    c.connection?.stream?.unref?.();
  } catch {
    // best effort
  }
}

async function openPg(Client, config, { notified, listening, lost }) {
  const c = new Client(config);
  let gone = false;
  const end = () => {
    if (gone) return;
    gone = true;
    lost();
  };
  c.on("error", end);
  c.on("end", end);
  c.on("notification", (message) => {
    if (message?.channel === CHANNEL) notified(message.payload);
  });
  unrefSocket(c);
  try {
    await within(c.connect(), CONNECT_WITHIN_MS);
    unrefSocket(c); // the TLS socket, if it became one
    await within(c.query(`LISTEN ${CHANNEL}`), CONNECT_WITHIN_MS);
  } catch (err) {
    gone = true;
    c.end().catch(noop);
    throw err;
  }
  listening();
  return {
    unlisten: () => c.query("UNLISTEN *"),
    close() {
      gone = true;
      c.end().catch(noop);
    },
  };
}

async function openPostgresJs(sql, { notified, listening }) {
  let closed = false;
  const { unlisten } = await within(
    sql.listen(
      CHANNEL,
      (payload) => !closed && notified(payload),
      () => !closed && listening(),
    ),
    CONNECT_WITHIN_MS,
  );
  return {
    unlisten,
    close() {
      closed = true;
      unlisten()
        .catch(noop)
        .finally(() => {
          // postgres.js keeps its listen connection open with no channel left: end it
          // (never kept by us otherwise), unless the app listens on it too.
          const { listen } = sql;
          if (listen?.sql && listen.channels && Object.keys(listen.channels).length === 0) {
            const own = listen.sql;
            delete listen.sql;
            own.end({ timeout: 0 }).catch(noop);
          }
        });
    },
  };
}

/**
 * The listener state machine of one client object. `hooks`: `deliver(payload)` → the
 * probe number or null, `probePayload(n)`, `send(payload)` → Promise (a NOTIFY through the
 * caller's client), `wakeAll()`, `changed(state)`, `heartbeatMs()` (how often a confirmed
 * listener probes itself again: `listenHeartbeatMs`).
 */
class Listener {
  /** "off" | "connecting" | "confirmed" | "deaf-polling" */
  state = "off";
  #open;
  #hooks;
  /** Bumped by stop(): a run of an older generation ends. */
  #generation = 0;
  #running = false;
  /** The current session's end: resolves with "lost" | "deaf" | "stopped". */
  /** @type {(why: "lost" | "deaf" | "stopped") => void} */
  #end = noop;
  /** @type {() => void} */
  #wake = noop;
  /** @type {number | undefined} */
  #probe = undefined;
  /** @type {NodeJS.Timeout | undefined} */
  #probeTimer = undefined;

  constructor(open, hooks) {
    this.#open = open;
    this.#hooks = hooks;
  }

  get running() {
    return this.#running;
  }

  start() {
    if (this.#running) return;
    this.#running = true;
    this.#run(++this.#generation).catch(noop);
  }

  stop() {
    if (!this.#running) return;
    this.#running = false;
    this.#generation++;
    this.#end("stopped");
    this.#wake();
    this.#set("off");
  }

  #set(state) {
    if (this.state === state) return;
    this.state = state;
    try {
      this.#hooks.changed(state);
    } catch {
      // the hub's business
    }
  }

  /** Sleeps `ms` (unref'd), or less if stop() is called. */
  #sleep(ms) {
    return /** @type {Promise<void>} */ (
      new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        timer.unref?.();
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      })
    );
  }

  async #run(generation) {
    let backoff = BACKOFF_FIRST_MS;
    let deafBackoff = DEAF_RETRY_MS;
    const current = () => this.#generation === generation;
    while (current()) {
      if (this.state !== "deaf-polling") this.#set("connecting");
      const ended = await this.#session(current);
      if (!current()) return;
      if (ended === "deaf") {
        this.#set("deaf-polling");
        // Readers check every pollIntervalMs now: have them look at once.
        this.#hooks.wakeAll();
        await this.#sleep(deafBackoff);
        deafBackoff = Math.min(deafBackoff * 2, DEAF_RETRY_AT_MOST_MS);
        continue;
      }
      if (ended === "lost") backoff = BACKOFF_FIRST_MS;
      if (this.state !== "deaf-polling") this.#set("connecting");
      await this.#sleep(backoff);
      backoff = Math.min(backoff * 2, BACKOFF_AT_MOST_MS);
    }
  }

  /** One LISTEN session, until it ends: "not-listening", "lost", "deaf" or "stopped". */
  async #session(current) {
    let listened = false;
    let settle;
    const ended = new Promise((resolve) => (settle = resolve));
    let done = false;
    const end = (how) => {
      if (done) return;
      done = true;
      this.#stopProbing();
      settle(how);
    };
    this.#end = end;
    let session;
    try {
      session = await this.#open({
        notified: (payload) => {
          if (done) return;
          let probe = null;
          try {
            probe = this.#hooks.deliver(payload);
          } catch {
            // a backend closed meanwhile
          }
          if (probe !== null && probe !== undefined && probe === this.#probe) {
            this.#stopProbing();
            this.#set("confirmed");
            // Heard: probe again later, and a probe that does not come back then means
            // the connection went silent (a NAT or proxy dropped it without a word).
            this.#probeTimer = setTimeout(() => this.#startProbing(() => end("lost")), this.#hooks.heartbeatMs());
            this.#probeTimer.unref?.();
          }
        },
        listening: () => {
          if (done) return;
          listened = true;
          // Whatever was written while no one listened: every reader looks again.
          this.#hooks.wakeAll();
          if (this.state === "confirmed") this.#set("connecting");
          this.#startProbing(() => end("deaf"));
        },
        lost: () => end(listened ? "lost" : "not-listening"),
      });
    } catch {
      end("not-listening");
      return ended;
    }
    if (!current() || done) {
      session.close();
      end(current() ? "lost" : "stopped");
      return ended;
    }
    const how = await ended;
    if (how === "deaf") {
      // Stop listening and close the connection (a pooler would otherwise keep a server
      // connection receiving what it cannot pass on).
      await within(
        Promise.resolve().then(() => session.unlisten()),
        UNLISTEN_WITHIN_MS,
      ).catch(noop);
    }
    session.close();
    return how;
  }

  /**
   * Sends probes (again after 0.5 s, doubling) until one comes back or 3 s passed; then
   * `deaf()` (or, for a heartbeat of a confirmed listener, its end as lost).
   */
  #startProbing(deaf) {
    this.#stopProbing();
    const probe = nextProbe();
    this.#probe = probe;
    const deafAt = Date.now() + DEAF_AFTER_MS;
    let wait = PROBE_AGAIN_MS;
    const send = () => {
      if (this.#probe !== probe) return;
      if (Date.now() >= deafAt) {
        this.#probe = undefined;
        deaf();
        return;
      }
      Promise.resolve()
        .then(() => this.#hooks.send(this.#hooks.probePayload(probe)))
        .catch(noop);
      const next = Math.min(wait, Math.max(0, deafAt - Date.now()));
      wait *= 2;
      this.#probeTimer = setTimeout(send, next);
      this.#probeTimer.unref?.();
    };
    send();
  }

  #stopProbing() {
    this.#probe = undefined;
    clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
  }
}

module.exports = { CHANNEL, POSTGRES_JS, Listener, connectorFor, within };
