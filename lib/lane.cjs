// Conversation loads and saves on a JS client, combined as the Rust pool combines them
// (src/backend/pool/combine/): a call goes out at once, through the native store, while
// none of its kind is in flight; calls made meanwhile wait, and go next as ONE statement
// (the combined form from src/sql/conversation.rs), sent from JS through the same driver.
// Ten sessions saving at once then cost the database one commit, not ten.
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

  /** Runs the call with `args` (plain: it may wait and go out combined). */
  call(plain, ...args) {
    if (!plain) return this.#single(...args);
    if (!this.#busy) {
      this.#busy = true;
      const sent = this.#single(...args);
      sent.then(this.#next, this.#next);
      return sent;
    }
    return new Promise((resolve, reject) => this.#queue.push({ args, resolve, reject }));
  }

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
        await Promise.all(batch.map((call) => settle(call, this.#single(...call.args))));
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
 * The rows of a combined statement's `outcome` (the driver's, `ord:i,data:t` columns) as
 * each of `calls` calls' text, or null for none; null when the statement failed.
 */
function textsByCall(outcome, calls) {
  const ords = outcome?.columns?.[0]?.ints;
  const lengths = outcome?.columns?.[1]?.lengths;
  const text = outcome?.columns?.[1]?.text;
  if (!ords || !lengths || typeof text !== "string" || outcome.notAnObject !== undefined) return null;
  const each = new Array(calls).fill(null);
  for (let row = 0, offset = 0; row < outcome.rows; row++) {
    const start = offset;
    if (lengths[row] > 0) offset += lengths[row];
    const at = ords[row] - 1;
    if (lengths[row] >= 0 && at >= 0 && at < calls) each[at] = text.slice(start, offset);
  }
  return each;
}

module.exports = { Lane, plainId, textsByCall };
