// What both stores share (index.cjs exports them): the native store behind each, stats,
// cleanup, close, and the store's place in its JS client's hub.
"use strict";

const { NativeBackend } = require("./binding.cjs");
const { storeError, run } = require("./errors.cjs");
const { invalid, isMissing, missingClient, nativeOptions, construct } = require("./options.cjs");
const { backendFor, hubOf, directOf } = require("./backend.cjs");
const diagnostics = require("./diagnostics.cjs");
const telemetry = require("./telemetry.cjs");
const metrics = require("./metrics.cjs");

/** What both stores share: the native store, cleanup, close. */

/**
 * @typedef {import("../binding").NativeStreamStore} NativeStreamStore
 * @typedef {import("../binding").NativeConversationStore} NativeConversationStore
 */

class Store {
  /** @type {NativeStreamStore | NativeConversationStore | undefined} */
  #native;
  #closed = false;
  /** @type {import("../binding").NativeBackend | undefined} */
  #backend;
  /**
   * A JS client's hub and this store's place there (lib/client-hub.cjs).
   * @type {{ hub: ReturnType<typeof import("./client-hub.cjs").hubFor>, token: unknown } | undefined}
   */
  #hub;
  /** What diagnostics events say of this store (lib/diagnostics.cjs). */
  #diagnostics = { kind: "stream", cleaned: "", target: {}, ids: false };

  /**
   * `kind` ("stream" | "conversation") names the store's diagnostics channels, and
   * `cleaned` the table `cleanup()` reports.
   */
  constructor(Native, client, options, { kind, cleaned }) {
    const opts = nativeOptions(options);
    this.#diagnostics = {
      kind,
      cleaned,
      target: diagnostics.targetOf(client, typeof client === "string" ? "rust-pool" : "js-client"),
      ids: opts.diagnosticIds === true,
    };
    if (isMissing(client)) {
      // Frameworks import route modules while building, often with DATABASE_URL unset:
      // construct anyway (options are still checked now), fail on first use.
      const unused = construct(() => NativeBackend.fromQuery(() => () => Promise.reject(missingClient()), opts));
      construct(() => new Native(unused, opts)).close();
      unused.close();
      return; // no #native: every call rejects, saying no client was given
    }
    if (typeof client === "string" || client instanceof URL)
      metrics.register(this, String(client), opts, this.#diagnostics.target);
    this.#native = construct(() => {
      this.#backend = backendFor(client, opts);
      this.#hub = hubOf.get(this.#backend);
      try {
        return new Native(this.#backend, opts);
      } catch (err) {
        this.#hub?.hub.remove(this.#hub.token);
        throw err;
      }
    });
  }

  /**
   * An append settled: other processes hear of what was written (JS clients), no
   * sooner than `batchMs` after the client's last batch of announcements went.
   */
  static wrote(store, batchMs = 0) {
    store.#hub?.hub.wrote(batchMs);
  }

  /**
   * A JS client's statements run from JS (lib/backend.cjs `directOf`); undefined for the
   * Rust pool, or a store that is not one.
   */
  static direct(store) {
    if (store === null || typeof store !== "object" || !(#backend in store) || !store.#backend) return undefined;
    return directOf.get(store.#backend);
  }

  /**
   * A reader is about to wait: the client's shared check runs, and its listener unless
   * the reader's stream is one this process writes (`listens`: `reader.listens` unless
   * the caller knows; JS clients).
   */
  static waiting(store, reader, listens = reader?.listens ?? true) {
    if (store.#hub) store.#hub.hub.waiting(store.#hub.token, listens);
  }

  /**
   * Runs `fn` as the store operation `name` ("stream:append", ...) on the table `table()`
   * names, published on its diagnostics channel when anyone listens; `id` only with
   * `diagnosticIds`. `table` is called only for a real store with a listener. `extra`:
   * more of the event's context (a reader's `waitedMs`).
   * @param {object} [extra]
   */
  static traced(store, name, table, id, fn, extra = {}) {
    // A wrong `this`: the call itself says so (Store.native).
    if (store === null || typeof store !== "object" || !(#diagnostics in store)) return fn();
    const { target, ids } = store.#diagnostics;
    return diagnostics.traced(
      name,
      () => {
        const [kind, operation] = name.split(":");
        return {
          store: kind,
          operation,
          table: table(),
          ...target,
          ...(ids && typeof id === "string" ? { id } : {}),
          ...extra,
        };
      },
      fn,
    );
  }

  /** The pool, the listener, waiting readers and counters now (null where not known). */
  stats() {
    native(this);
    const s = /** @type {import("../binding").NativeBackend} */ (this.#backend).stats();
    const or = (v) => (v === undefined ? null : v);
    return {
      backend: s.backend,
      pooler: or(s.pooler),
      maxSize: or(s.maxSize),
      size: or(s.size),
      inUse: or(s.inUse),
      idle: or(s.idle),
      opening: or(s.opening),
      waiting: or(s.waiting),
      allowed: or(s.allowed),
      listener: this.#hub?.hub.canListen ? this.#hub.hub.listenerState : s.listener,
      readersWaiting: s.readersWaiting,
      statementsSent: or(s.statementsSent),
      notificationsSent: or(s.notificationsSent),
      notificationsReceived: or(s.notificationsReceived),
      connectionsRefused: or(s.connectionsRefused),
      replicaReads: or(s.replicaReads),
      primaryReads: s.primaryReads,
      replicaFallbacks: or(s.replicaFallbacks),
    };
  }

  /**
   * The native store behind `store`; a clear error when `store` is not one (a wrong
   * `this`), when it was made without a client, or once it is closed.
   */
  static native(store) {
    if (store === null || typeof store !== "object" || !(#native in store)) {
      throw invalid(
        "a store method was called on an object that is not a store (was it taken off its " +
          "store, as in `const { append } = store`? bind it, or call it on the store)",
      );
    }
    if (store.#native === undefined) {
      throw store.#closed
        ? storeError("STORE_CLOSED", "this store has been closed; create a new store to keep going")
        : missingClient();
    }
    telemetry.mark();
    return store.#native;
  }

  /** Removes expired rows; resolves how many streams (or conversations) went. */
  cleanup() {
    const { kind, cleaned } = this.#diagnostics;
    return traced(
      this,
      `${kind}:cleanup`,
      () => cleaned,
      undefined,
      () => run(() => native(this).cleanup()),
    );
  }

  /**
   * Releases the store's connection and ends its waiting readers; resolves once a pool
   * no other store uses has closed its connections.
   */
  async close() {
    if (this === null || typeof this !== "object" || !(#native in this)) Store.native(this); // a wrong `this`
    this.#closed = true;
    if (this.#hub) {
      this.#hub.hub.remove(this.#hub.token);
      this.#hub = undefined;
    }
    await run(async () => this.#native?.close());
  }

  get closed() {
    if (this === null || typeof this !== "object" || !(#native in this)) Store.native(this); // a wrong `this`
    return this.#native?.closed ?? this.#closed;
  }
}

const native = (store) => Store.native(store);
const wrote = (store, batchMs = 0) => Store.wrote(store, batchMs);
const waiting = (store, reader, listens) => Store.waiting(store, reader, listens);
/** @type {(store: any, name: string, table: () => string, id: unknown, fn: () => any, extra?: object) => any} */
const traced = (store, name, table, id, fn, extra = {}) => Store.traced(store, name, table, id, fn, extra);
const direct = (store) => Store.direct(store);

if (typeof Symbol.asyncDispose === "symbol") {
  Store.prototype[Symbol.asyncDispose] = Store.prototype.close;
}

module.exports = { Store, native, wrote, waiting, traced, direct };
