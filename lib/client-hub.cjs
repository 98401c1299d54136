// What the stores built on one JS client object share (src/backend/js/ does the rest):
//
// - a number (`NativeBackend.fromQuery(..., clientNumber)`): stores on one client object
//   share the chunks they hold in memory (src/tail.rs);
// - publishing: after appends, the NOTIFY payloads the native backends gathered
//   (`takeNotifications`) go out through the caller's client as one statement, one batch
//   in flight at a time, outside the appends (their promises never wait for it; a failure
//   only costs other processes' readers time: their shared check finds the chunks);
// - the LISTEN connection (lib/listener.cjs), for pg and postgres.js, started when a reader
//   that relies on it waits, closed while every waiting reader reads a stream this process
//   appends to (src/written_here.rs);
// - the shared check of waiting readers: once it runs (`shareChecks`), a waiting reader
//   no longer polls on its own; one statement per store and status table asks for all of
//   them (`checkWaiting`), every `pollIntervalMs`, or once a second while the listener is
//   confirmed.
"use strict";

const { CHANNEL, POSTGRES_JS, Listener, connectorFor, within } = require("./listener.cjs");

// A NOTIFY takes a transaction id, so its commit would wait for a WAL flush; nothing of
// it needs to outlive a crash (notifications never do): it commits without waiting, as
// the Rust pool's (src/backend/notify.rs).
// A read-only session (a standby, a writer that failed over) refuses the first setting:
// a notification never goes out where the writers' listeners are not.
const RELAXED = "set_config('synchronous_commit', 'off', true)";
const WRITABLE = "set_config('transaction_read_only', 'off', true)";
const NOTIFY_ONE = `SELECT ${WRITABLE}, pg_notify($1::text, $2::text), ${RELAXED}`;
const NOTIFY_MANY = `SELECT ${WRITABLE}, pg_notify($1::text, p), ${RELAXED} FROM json_array_elements_text($2::json) AS p`;
/** A batch of announcements on its way this long no longer holds back an append's own. */
const STUCK_MS = 100;
/** A check loop with no reader waiting ends after this long; idle, it looks this often. */
const LOOP_IDLE_MS = 1_000;
const LOOP_LOOK_MS = 50;
// A listener no waiting reader has relied on for UNNEEDED_MS may close (`#closeUnneeded`);
// needed again within REOPENED_MS of closing, it waits twice as long next time (up to that).
const UNNEEDED_MS = 100;
const REOPENED_MS = 10_000;

/** `listenHeartbeatMs`'s default (src/backend/options.rs). */
const HEARTBEAT_MS = 30_000;
const noop = () => {};

/** What identifies a client object: a postgres.js `sql` for every wrapper of it. */
const keyOf = (client) => client?.[POSTGRES_JS] ?? client;

/** @type {WeakMap<object, Hub>} */
const hubs = new WeakMap();
let numbers = 0;

class Hub {
  number;
  #send;
  #connector;
  /** @type {import("./listener.cjs").Listener | null} */
  #listener = null;
  /** @type {Map<object, { ref: WeakRef<object>, listen: boolean, timeoutMs: number, heartbeatMs: number }>} by token */
  #backends = new Map();
  #finalizer = new FinalizationRegistry((token) => this.#forget(token));
  // publishing
  #flushQueued = false;
  #sending = false;
  #again = false;
  /** When (`performance.now()`) the last batch went out, and the next is due. */
  #publishedAt = -Infinity;
  #flushDue = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} a flush due later than now */
  #flushTimer = undefined;
  // the shared check loop
  #looping = false;
  #sharing = false;
  #lastWaiting = 0;
  // When a waiting reader last relied on the listener, when it last closed for want of
  // one (0: it opened since), and how long unneeded before it closes (`#closeUnneeded`).
  #lastNeeded = 0;
  #closedAt = 0;
  #unneededMs = UNNEEDED_MS;
  #poke = noop;
  /** @type {Map<object, number>} the loop's schedule: when each backend's next check is due */
  #due = new Map();
  /** The loop sleeps with no reader waiting (it looks again in LOOP_LOOK_MS). */
  #idleSleep = false;

  /** `send(sql, params)`: a statement through the caller's client (its rows unused). */
  constructor(number, client, send) {
    this.number = number;
    this.#send = send;
    this.#connector = connectorFor(client);
  }

  /** Whether this client can LISTEN (pg, postgres.js). */
  get canListen() {
    return this.#connector !== null;
  }

  /** "off", "connecting", "confirmed" or "deaf-polling". */
  get listenerState() {
    return this.#listener?.state ?? "off";
  }

  get #heard() {
    return this.listenerState === "confirmed";
  }

  /** A store's backend joins; resolves nothing. Returns its token for `remove`. */
  add(backend, options) {
    const token = {};
    this.#backends.set(token, {
      ref: new WeakRef(backend),
      listen: options?.listen !== false,
      timeoutMs: options?.queryTimeoutMs ?? 30_000,
      heartbeatMs: options?.listenHeartbeatMs ?? HEARTBEAT_MS,
    });
    this.#finalizer.register(backend, token, token);
    if (this.#sharing) backend.shareChecks(this.#heard);
    return token;
  }

  /** A store closed: what it wrote goes out still; the last one stops the listener. */
  remove(token) {
    const entry = this.#backends.get(token);
    if (entry === undefined) return;
    const backend = entry.ref.deref();
    let payloads = [];
    try {
      payloads = backend?.takeNotifications() ?? [];
    } catch {
      // closed already
    }
    this.#backends.delete(token);
    this.#finalizer.unregister(token);
    if (payloads.length > 0) this.#publish(payloads, entry.timeoutMs).catch(noop);
    this.#idle();
  }

  #forget(token) {
    this.#backends.delete(token);
    this.#idle();
  }

  /** No store left: the listener ends (it starts again when a reader waits). */
  #idle() {
    if (this.#backends.size > 0) return;
    this.#listener?.stop();
    this.#poke();
  }

  *#live() {
    for (const [token, entry] of this.#backends) {
      const backend = entry.ref.deref();
      if (backend === undefined) this.#backends.delete(token);
      else yield [backend, entry];
    }
  }

  #any() {
    for (const [backend] of this.#live()) return backend;
    return undefined;
  }

  // ------------------------------------------------------------------ publishing

  /**
   * An append settled: what it wrote goes out (unless its statement announced it: an
   * append made alone may notify from its own transaction), with every other write
   * since, once the callbacks running now are done and no sooner than `batchMs` (the
   * store's `notifyBatchMs`) after the last batch went. The appender's next statement
   * goes out first.
   */
  wrote(batchMs = 0) {
    // Within the store's `notifyBatchMs` of the last batch, it waits for the rest of that
    // time: a listener elsewhere wakes (a server transaction, and its process) once per
    // batch, not once a chunk, while chunks are written back to back.
    const due = Math.max(this.#publishedAt + batchMs, performance.now());
    if (this.#flushQueued) {
      if (this.#flushDue <= due) return;
      clearTimeout(this.#flushTimer);
    }
    this.#flushQueued = true;
    this.#flushDue = due;
    const flush = () => {
      this.#flushQueued = false;
      this.#flushTimer = undefined;
      this.#flush();
    };
    const wait = due - performance.now();
    // Not unref'd: a process about to exit still announces what it stored first.
    if (wait > 0) this.#flushTimer = setTimeout(flush, wait);
    else setImmediate(flush).unref?.();
  }

  #flush() {
    if (this.#sending) {
      this.#again = true;
      return;
    }
    const payloads = [];
    let timeoutMs = 30_000;
    for (const [backend, entry] of this.#live()) {
      try {
        for (const payload of backend.takeNotifications()) payloads.push(payload);
      } catch {
        continue;
      }
      timeoutMs = Math.min(timeoutMs, entry.timeoutMs);
    }
    if (payloads.length === 0) return;
    this.#sending = true;
    this.#publishedAt = performance.now();
    this.#publish(payloads, timeoutMs)
      .catch(noop)
      .finally(() => {
        this.#sending = false;
        if (this.#again) {
          this.#again = false;
          this.#flush();
        }
      });
  }

  /**
   * A batch of announcements is on its way (a lone append then announces after it, so
   * listeners hear a stream's chunks in order), unless it has taken STUCK_MS already.
   */
  get publishing() {
    return this.#sending && performance.now() - this.#publishedAt < STUCK_MS;
  }

  /** Payloads a store took back (`takeNotifications`) go out now after all. */
  announce(payloads, timeoutMs) {
    this.#publish(payloads, timeoutMs).catch(noop);
  }

  #publish(payloads, timeoutMs) {
    const [sql, params] =
      payloads.length === 1 ? [NOTIFY_ONE, [CHANNEL, payloads[0]]] : [NOTIFY_MANY, [CHANNEL, JSON.stringify(payloads)]];
    return within(
      Promise.resolve().then(() => this.#send(sql, params)),
      timeoutMs,
    );
  }

  // --------------------------------------------------------------- waiting readers

  /**
   * A reader of `backend`'s store is about to wait (`pause()`), or a stop signal is
   * watched: the listener runs (unless the store has `listen: false`, or `listens` is
   * false: a stream this process writes wakes its readers itself), and so does the
   * shared check once readers rely on it.
   */
  waiting(token, listens = true) {
    if (!this.canListen) return; // readers poll on their own
    const entry = this.#backends.get(token);
    if (entry === undefined) return;
    const now = (this.#lastWaiting = Date.now());
    if (entry.listen && listens) {
      if (this.#closedAt > 0 && this.#listener?.state === "off") {
        // Needed again soon after it closed: it stays longer before it closes next time.
        this.#unneededMs =
          now - this.#closedAt < REOPENED_MS ? Math.min(this.#unneededMs * 2, REOPENED_MS) : UNNEEDED_MS;
        this.#closedAt = 0;
      }
      this.#lastNeeded = now;
      this.#listen();
    } else this.#closeUnneeded(now);
    // A reader waits once per chunk it reads: the running loop is woken only when this
    // backend has no check scheduled yet (its first reader), not for every wait.
    const backend = entry.ref.deref();
    if (this.#looping && !this.#idleSleep && backend !== undefined && this.#due.has(backend)) return;
    this.#loop();
  }

  #listen() {
    if (this.#listener === null) {
      this.#listener = new Listener(this.#connector, {
        deliver: (payload) => {
          const backend = this.#any();
          return backend === undefined ? null : backend.deliver(payload);
        },
        probePayload: (n) => this.#any()?.probePayload(n) ?? "",
        send: (payload) => {
          const entry = this.#live().next().value;
          return this.#publishProbe(payload, entry?.[1].timeoutMs ?? 30_000);
        },
        wakeAll: () => this.#any()?.wakeAll(),
        changed: () => this.#share(),
        heartbeatMs: () => {
          let ms = HEARTBEAT_MS;
          for (const [, entry] of this.#live()) ms = Math.min(ms, entry.heartbeatMs);
          return ms;
        },
      });
    }
    this.#listener.start();
  }

  /**
   * Readers wait, and none relies on the listener (each reads a stream this process
   * appends to: its appends wake it; src/written_here.rs): the listener closes, so that
   * every chunk does not come back as this process's own notification. The next reader
   * that relies on it (or a stop signal) starts it again, and every reader then looks.
   */
  #closeUnneeded(now) {
    if (this.#listener?.state !== "confirmed" || now - this.#lastNeeded < this.#unneededMs) return;
    const needs = (backend) => {
      try {
        return backend.needsListener;
      } catch {
        return false; // closed
      }
    };
    for (const [backend] of this.#live()) if (needs(backend)) return void (this.#lastNeeded = now);
    this.#closedAt = now;
    this.#listener?.stop();
  }

  #publishProbe(payload, timeoutMs) {
    return within(
      Promise.resolve().then(() => this.#send(NOTIFY_ONE, [CHANNEL, payload])),
      timeoutMs,
    );
  }

  /** Every backend learns that the check is shared, and whether the listener hears. */
  #share() {
    if (!this.#sharing) return;
    const heard = this.#heard;
    for (const [backend] of this.#live()) {
      try {
        backend.shareChecks(heard);
      } catch {
        // closed
      }
    }
    this.#poke();
  }

  /** Runs the shared check of every backend whose readers wait, each at its own tick. */
  #loop() {
    if (this.#looping) {
      this.#poke();
      return;
    }
    this.#looping = true;
    this.#sharing = true;
    this.#share();
    this.#checkWhileWaited().finally(() => {
      this.#looping = false;
    });
  }

  async #checkWhileWaited() {
    const due = this.#due;
    due.clear();
    for (;;) {
      this.#idleSleep = false;
      const now = Date.now();
      let next = Infinity;
      const checks = [];
      for (const [backend] of this.#live()) {
        let tick = null;
        try {
          tick = backend.checkInMs;
        } catch {
          // closed
        }
        if (tick === null || tick === undefined) {
          due.delete(backend);
          continue;
        }
        // A shorter tick than before (the listener went deaf) pulls the check in.
        const at = Math.min(due.get(backend) ?? Infinity, now + tick);
        due.set(backend, at);
        if (at <= now) checks.push(backend);
        else next = Math.min(next, at);
      }
      if (checks.length > 0 || next !== Infinity) this.#closeUnneeded(now); // readers wait
      if (checks.length > 0) {
        // One check of each backend in flight at a time; errors are the readers' to see.
        await Promise.all(
          checks.map((backend) => {
            due.delete(backend);
            return Promise.resolve()
              .then(() => backend.checkWaiting())
              .catch(noop);
          }),
        );
        continue;
      }
      if (next === Infinity) {
        // No reader waits: look again shortly (one may be registering now), and end the
        // loop once none has come for a while; `waiting()` starts it again.
        if (Date.now() - this.#lastWaiting > LOOP_IDLE_MS || this.#backends.size === 0) return;
        next = now + LOOP_LOOK_MS;
        this.#idleSleep = true;
      }
      await this.#sleep(next - now);
    }
  }

  #sleep(ms) {
    return /** @type {Promise<void>} */ (
      new Promise((resolve) => {
        const timer = setTimeout(done, Math.max(0, ms));
        timer.unref?.();
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#poke = () => {
          this.#poke = noop;
          done();
        };
      })
    );
  }
}

/** The hub of a client object (made on first use); `send` runs a statement through it. */
function hubFor(client, send) {
  const key = keyOf(client);
  let hub = hubs.get(key);
  if (hub === undefined) {
    numbers = numbers + 1 >= 2 ** 32 ? 1 : numbers + 1;
    hub = new Hub(numbers, client, send);
    hubs.set(key, hub);
  }
  return hub;
}

module.exports = { hubFor };
