// Conversation loads and saves on a JS client, combined as the Rust pool combines them
// (src/backend/pool/combine/): while none of its kind is in flight, a call goes out in the
// same turn (alone, through the native store, or with the calls made by the microtasks
// queued before it); calls made meanwhile wait, and go next as ONE statement (the
// combined form from src/sql/conversation.rs), sent from JS through the same driver. Ten
// sessions saving at once then cost the database one commit, not ten.
//
// Only plain calls wait (an id the native checks would accept, no NUL in the text): any
// other goes alone through the native store, which says what is wrong. A combined
// statement that fails hands each of its calls to the native store alone, whose errors
// are the store's own (classified, with their codes); a combined statement is never
// retried as such, so no call is made twice.
"use strict";

/** Most calls in one combined statement. */
const MOST_CALLS = 256;
/** The longest id (in UTF-16 units) a call may have to wait: 1,024 UTF-8 bytes at most. */
const PLAIN_ID = 341;

/** Whether `id` certainly passes the native store's checks (non-empty, short, no NUL). */
function plainId(id) {
  return typeof id === "string" && id !== "" && id.length <= PLAIN_ID && !id.includes("\0");
}

class Lane {
  #busy = false;
  /** Calls wait for the microtask that sends them (`#start`). */
  #due = false;
  /** @type {{ args: any[], resolve: (v: any) => void, reject: (e: any) => void }[]} */
  #queue = [];
  #single;
  #combined;

  /**
   * `single(...args)`: the call alone, through the native store (a promise).
   * `combined(argsList)`: the calls as one statement; resolves each call's result in
   * order, or null when the statement failed.
   */
  constructor(single, combined) {
    this.#single = single;
    this.#combined = combined;
  }

  /**
   * Runs the call with `args` (plain: it may wait and go out combined). A call made while
   * the lane is free goes out once the microtasks queued before it have run, with the
   * calls they made: callers that a combined statement let go together call again
   * together, and their calls go out as one statement, not one alone and the rest after.
   */
  call(plain, ...args) {
    if (!plain) return this.#single(...args);
    const called = new Promise((resolve, reject) => this.#queue.push({ args, resolve, reject }));
    if (!this.#busy) {
      this.#busy = true;
      this.#due = true;
      queueMicrotask(this.#start);
    }
    return called;
  }

  /** What waits for its microtask goes out now (the store is closing). */
  flush() {
    this.#start();
  }

  #start = () => {
    if (!this.#due) return;
    this.#due = false;
    this.#next();
  };

  /** The lane is free: what waits goes out, one combined statement at a time. */
  #next = async () => {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, MOST_CALLS);
      if (batch.length === 1) {
        await settle(batch[0], this.#single(...batch[0].args));
        continue;
      }
      const results = await this.#combined(batch.map((call) => call.args)).catch(() => null);
      if (results === null) {
        // Each call alone: one session's calls one after another, in call order (two
        // saves of a session at once must leave the later one's text), others at once.
        /** @type {Map<unknown, Promise<unknown>>} */
        const bySession = new Map();
        for (const call of batch) {
          const before = bySession.get(call.args[0]) ?? Promise.resolve();
          bySession.set(
            call.args[0],
            before.then(() => settle(call, this.#single(...call.args))),
          );
        }
        await Promise.all(bySession.values());
      } else {
        batch.forEach((call, i) => call.resolve(results[i]));
      }
    }
    this.#busy = false;
  };
}

/** Settles a waiting call with `promise`'s outcome; never rejects. */
function settle(call, promise) {
  return promise.then(call.resolve, call.reject);
}

/**
 * The rows of a combined load (each `[ord, data]`, or `{ ord, data }`, as the client gives
 * them: the call's place from 1, and its text) as each of `calls` calls' text, or null for
 * none. Null when the statement failed (no rows) or a row is not understood: the calls then
 * go alone.
 */
function textsByCall(rows, calls) {
  if (!Array.isArray(rows)) return null;
  const each = new Array(calls).fill(null);
  for (const row of rows) {
    if (row === null || typeof row !== "object") return null;
    const at = Number(Array.isArray(row) ? row[0] : row.ord) - 1;
    const data = Array.isArray(row) ? row[1] : row.data;
    if (!Number.isInteger(at) || at < 0 || at >= calls) return null;
    if (typeof data === "string") each[at] = data;
    else if (data !== null && data !== undefined) return null;
  }
  return each;
}

module.exports = { Lane, plainId, textsByCall };
