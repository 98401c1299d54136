// Exactly-once appends, with the original's tables and no schema change.
//
// The store knows, for each stream it writes, the seq its next chunk must take. Every
// append is sent *conditional* on that seq (`native.append(id, chunk, at)`: stored only
// if the stream has exactly `at - 1` chunks, so it can land nowhere else and never
// twice). A stream's appends through one store go one at a time, in call order.
//
// When an attempt's outcome is unknown (the connection broke, or this side stopped
// waiting), the store settles it itself, within the call's `queryTimeoutMs`: it sends
// the same conditional append again (an attempt that certainly failed for a passing
// reason, such as a deadline met in a queue, is simply tried again too). Exactly one of the two can ever take seq `at`:
//   - the retry stores it: the first attempt can no longer land (the count moved);
//   - the retry is refused: `lookup` reads the chunk at `at`; if it is this chunk, the
//     first attempt landed. If the stream moved on without it, it never will.
// So `append` resolves only when the chunk is stored once, at the seq it returns, and
// rejects only when it is not stored and never will be, except with
// APPEND_OUTCOME_UNKNOWN (the database could not be reached to settle it in time).
// Appending the same chunk again after that is safe: it is stored once.
//
// Fencing: a store that wrote a stream never appends into a later generation of it
// (after cleanup and `create` again elsewhere), nor past writes the database lost (an
// asynchronous standby promoted): a count that went backwards, or another text at the
// seq this store last wrote, rejects with STREAM_NOT_ACTIVE, saying why ("re-created"; a
// count that went back: "lost writes it had acknowledged ..., or it was re-created").
//
// Two producers on one stream: each still gets distinct, gapless seqs and its own call
// order; when the other producer took the expected seq, the append goes after it.
"use strict";

const { PostgresStoreError, translate, outcomeUnknown, ownLimit } = require("./errors.cjs");
const metrics = require("./metrics.cjs");

/** @typedef {import("../binding").NativeStreamStore} NativeStreamStore */

/**
 * The share of the call's time the first attempt gets, and the second; the rest settles
 * an unknown outcome (each attempt keeps the last tenth of its own time to settle a
 * statement still running, see `src/backend/pool.rs`).
 */
const FIRST_ATTEMPT = 1 / 3;
const SECOND_ATTEMPT = 1 / 2;
/**
 * No attempt is started with less time than this left (or a quarter of queryTimeoutMs,
 * if less) unless one may have landed: a statement cut that short could not be settled
 * (cancelled, and its answer awaited), and would turn a certain failure into an unknown
 * one. The call then fails with a certain QUERY_TIMEOUT instead.
 */
const SHORTEST_ATTEMPT_MS = 150;
/**
 * Idle streams a store remembers (no call running or waiting, no outcome left to settle);
 * beyond it the least recently written idle one is forgotten. A forgotten stream costs
 * one lookup on its next append. A stream with calls in flight, or with an append whose
 * outcome is unknown, is never forgotten: its call order and its exactly-once retry
 * depend on it. Those are bounded by the calls in flight, and by the appends that ended
 * APPEND_OUTCOME_UNKNOWN and were not appended again.
 */
const MOST_IDLE_STREAMS = 10_000;

const RECREATED = "it was re-created since this store wrote to it";

/**
 * The ticket of an append sent from JS without asking Rust (`Appends.#begin`); tickets
 * Rust gives are below it (src/sent_appends.rs), and settling this one finds nothing.
 */
const UNTICKETED = 2 ** 30;

/** The longest a trial append's announcement waits for the trial's next ones (`tellRust`). */
const HELD_MS = 5;

/** The most appends one combined statement carries (`Appends.#combine`). */
const MOST_COMBINED = 500;

/**
 * Why a stream's count went back from `had` (this store stored that many) to `now`: the
 * database lost writes it had acknowledged (an asynchronous standby promoted), or the
 * stream was re-created. The original's tables keep no generation to tell them apart by
 * (the texts of a new generation may be the same), so both are named; none left at all
 * is taken for a stream created anew, as before.
 */
function wentBack(had, now) {
  if (now === 0) return RECREATED;
  return (
    `its chunk count went back from ${had} to ${now}: the database lost writes it had acknowledged ` +
    "(a failover to an asynchronous standby), or it was re-created since this store wrote to it"
  );
}

function notActive(id, why) {
  const message = `Stream "${id}" not found or not active` + (why ? ` (${why})` : "");
  return new PostgresStoreError("STREAM_NOT_ACTIVE", message);
}

function unknown(id, at, cause) {
  return new PostgresStoreError(
    "APPEND_OUTCOME_UNKNOWN",
    `could not find out within queryTimeoutMs whether the chunk for stream "${id}" was stored ` +
      `(as seq ${at}): the database could not be reached. Append the same chunk again when it ` +
      "can: it will be stored once",
    { retryable: true, cause },
  );
}

function timedOut(ms) {
  return new PostgresStoreError(
    "QUERY_TIMEOUT",
    `the call did not finish within queryTimeoutMs (${ms} ms) and was never sent; the database ` +
      "may be overloaded or unreachable. Retry later",
    { retryable: true },
  );
}

/** What a store knows of one stream it writes. */
class Writer {
  /**
   * The seq the next chunk must take; undefined until known.
   * @type {number | undefined}
   */
  next = undefined;
  /** The seq and text of the last chunk this store stored, for fencing. */
  lastSeq = 0;
  /** @type {string | undefined} */
  last = undefined;
  /**
   * Why this store appends no more to it (a later generation was seen, or the database
   * lost acknowledged writes); undefined while it may.
   * @type {string | undefined}
   */
  fenced = undefined;
  /** The chunk whose append ended APPEND_OUTCOME_UNKNOWN, and the seq it may hold. */
  /** @type {{ chunk: string, at: number } | undefined} */
  pending = undefined;
  /** The stream finished through this store (stop, complete, fail). */
  finished = false;
  /** The running append left something for other processes to hear of (`onSettled`). */
  announce = false;
  /** The stream's appends, one at a time: how many are running or waiting, and the last. */
  running = 0;
  /** @type {Promise<unknown>} */
  tail = Promise.resolve();
}

class Appends {
  /** @type {() => NativeStreamStore} */
  #native;
  #timeoutMs;
  /** Called as an append settles that left something to announce (or may have). */
  #onSettled;
  /**
   * Every stream this store writes or remembers.
   * @type {Map<string, Writer>}
   */
  #writers = new Map();
  /**
   * The idle ones among them, least recently written first: the only ones forgotten.
   * @type {Map<string, Writer>}
   */
  #idle = new Map();

  /**
   * A JS client's statements run from JS (`directOf` in lib/backend.cjs); with pg, a
   * first attempt goes out from here (`#send`).
   * @type {() => any}
   */
  #direct;
  /** @type {import("../binding").AppendStatements | undefined} read once */
  #statements;
  /**
   * Hands a chunk sent from JS to the readers waiting here that took it (their tokens,
   * from `appendStored`): lib/stream-store.cjs.
   * @type {(tokens: number[], seq: number, chunk: string) => void}
   */
  #fed;
  /**
   * The ticket of the last append sent from JS that stored its chunk, while Rust has not
   * heard of it yet (`#tell` runs after the appender's next statement is out): the next
   * `appendBegin` settles it, so that the next append can count as made alone.
   * @type {number | undefined}
   */
  #untold = undefined;
  /** This store's attempts in flight (sent from JS or through Rust): an append is made alone at 0. */
  #inFlight = 0;
  /**
   * Lone appends this store may still send from JS without asking Rust how
   * (`appendBegin`'s lease: the notify choice has no trial among them), all `#leaseInside`;
   * `#used` of them were made since Rust last heard.
   */
  #lease = 0;
  #leaseInside = false;
  #used = 0;
  /**
   * Rust said this store's appends go out from JS as they are for good (no answer on
   * Citus can still change that): only then does JS decide an append without asking.
   */
  #asIs = false;
  /**
   * While announcements wait (`tellRust`: a notify choice's trial appends', or those held
   * back for the next append that announces to carry): the timer that sends them.
   * @type {ReturnType<typeof setTimeout> | undefined}
   */
  #held = undefined;
  /**
   * Until when (`performance.now()`) a lone append holds back its announcement for the
   * next to carry (`notifyBatchMs` after the last that announced inside).
   */
  #quietUntil = 0;
  #batchMs;
  /**
   * Appends sent from JS made while this store's appends in flight took all the client's
   * connections (its `width`): rather than each waiting for a connection, they go out
   * together, as one statement, as soon as one of those is done (`#combine`).
   * @type {{ native: NativeStreamStore, id: string, chunk: string, at: number, until: number, resolve: (seq: number) => void, reject: (err: unknown) => void }[]}
   */
  #together = [];
  /**
   * Appends sent from JS that stored their chunks, which Rust hears of next (`tellRust`).
   * `held`: how long (ms) its announcement may wait for a later append's (0: not at all).
   * @type {{ native: NativeStreamStore, ticket: number, id: string, chunk: string, seq: number, notified: boolean, held: number }[]}
   */
  #toTell = [];

  /**
   * @param {() => NativeStreamStore} native the native store (it throws for a closed or
   *   clientless one)
   * @param {number} timeoutMs
   * @param {number} batchMs `notifyBatchMs`: how long a lone append may hold back its
   *   announcement for the next to carry (`#send`)
   * @param {() => void} onSettled
   * @param {() => any} direct
   * @param {(tokens: number[], seq: number, chunk: string) => void} fed
   */
  constructor(native, timeoutMs, batchMs, onSettled, direct, fed) {
    this.#native = native;
    this.#batchMs = batchMs;
    this.#fed = fed;
    this.#onSettled = onSettled;
    this.#timeoutMs = timeoutMs;
    this.#direct = direct;
  }

  /** The stream was created through this store: its first chunk is seq 1. */
  created(id) {
    // A new generation: calls still running on the previous one keep their own writer.
    const writer = new Writer();
    writer.next = 1;
    this.#writers.set(id, writer);
    this.#settled(id, writer);
  }

  /** The stream finished through this store. */
  finished(id) {
    const writer = this.#writers.get(id);
    if (writer !== undefined) writer.finished = true;
  }

  /**
   * What this store's writer knows of a stream, for a reader (a read replica is read
   * only for a stream it does not write): whether it writes it and has not seen it
   * finish, and the most chunks it stored.
   * @returns {[boolean, number]}
   */
  knows(id) {
    const writer = this.#writers.get(id);
    if (writer === undefined) return [false, 0];
    return [!writer.finished, writer.lastSeq];
  }

  /** Resolves the seq the chunk was stored at, exactly once. */
  append(id, chunk) {
    const deadline = Date.now() + this.#timeoutMs;
    const writer = this.#writer(id);
    // The stream's previous append is still running: this one goes after it.
    const turn =
      writer.running > 0
        ? writer.tail.then(() => this.#appendNow(id, chunk, writer, deadline))
        : this.#appendNow(id, chunk, writer, deadline);
    writer.running++;
    this.#idle.delete(id);
    const done = () => {
      writer.running--;
      this.#settled(id, writer);
      if (writer.announce) {
        writer.announce = false;
        this.#onSettled();
      }
    };
    writer.tail = turn.then(done, done);
    return turn;
  }

  #writer(id) {
    let writer = this.#writers.get(id);
    if (writer === undefined) {
      writer = new Writer();
      this.#writers.set(id, writer);
    }
    return writer;
  }

  /** A writer may have become idle: it goes to the end of the idle list. */
  #settled(id, writer) {
    if (this.#writers.get(id) !== writer) return; // replaced by a later generation
    if (writer.running > 0 || writer.pending !== undefined) return;
    this.#idle.delete(id);
    this.#idle.set(id, writer);
    while (this.#idle.size > MOST_IDLE_STREAMS) {
      const oldest = /** @type {string} */ (this.#idle.keys().next().value);
      this.#idle.delete(oldest);
      this.#writers.delete(oldest);
    }
  }

  async #call(make) {
    try {
      return { value: await make() };
    } catch (err) {
      return { error: translate(err) };
    }
  }

  /**
   * The append's turn. Usually the seq is known and nothing is left to settle: a first
   * attempt goes out at once, and only a failure goes on to `#settle` (whose loop then
   * takes that failure as its first attempt's). Kept small: it runs for every append.
   */
  #appendNow(id, chunk, writer, deadline) {
    if (writer.fenced !== undefined || writer.next === undefined || writer.pending !== undefined) {
      return this.#settle(id, chunk, writer, deadline);
    }
    let native;
    try {
      native = this.#native();
    } catch (err) {
      return Promise.reject(translate(err));
    }
    const left = deadline - Date.now();
    if (left < Math.min(SHORTEST_ATTEMPT_MS, this.#timeoutMs / 4)) return this.#settle(id, chunk, writer, deadline);
    const at = writer.next;
    let first;
    try {
      first = this.#attempt(writer, native, id, chunk, at, Math.max(1, Math.floor(left * FIRST_ATTEMPT)), false);
    } catch (err) {
      first = Promise.reject(err);
    }
    return first.then(
      (seq) => this.#stored(writer, seq, chunk),
      (err) => this.#settle(id, chunk, writer, deadline, { at, error: translate(err) }, native),
    );
  }

  /**
   * The whole of an append: learning where a stream this store did not create stands,
   * attempts until one is certain, and settling an unknown outcome. `failed`: the first
   * attempt went out already (`#appendNow`) for seq `at`, and failed with `error`.
   * @param {{ at: number, error: PostgresStoreError }} [failed]
   */
  async #settle(id, chunk, writer, deadline, failed = undefined, native = this.#native()) {
    const left = () => deadline - Date.now();
    let at;
    if (failed === undefined) {
      if (writer.fenced !== undefined) throw notActive(id, writer.fenced);
      if (left() <= 0) throw timedOut(this.#timeoutMs);
      if (writer.next === undefined) {
        // A stream this store did not create: learn where it stands, once.
        const { value, error } = await this.#call(() => native.lookup(id, 1, left()));
        if (error) throw error;
        if (value === null || value.state !== "active") throw notActive(id);
        writer.next = value.totalChunks + 1;
      }
      at = writer.next;
    } else at = failed.at;
    // An attempt whose outcome is unknown was sent (by this call, or by an earlier call
    // of the same chunk that ended APPEND_OUTCOME_UNKNOWN).
    let mayHaveLanded = writer.pending?.at === at && writer.pending.chunk === chunk;
    writer.pending = undefined;
    let lastError;
    // The first attempt's failure is looked at whatever time is left.
    for (let attempt = 0; (attempt === 0 && failed !== undefined) || left() > 0; attempt++) {
      let seq, error;
      if (attempt === 0 && failed !== undefined) {
        error = failed.error;
      } else {
        if (!mayHaveLanded && left() < Math.min(SHORTEST_ATTEMPT_MS, this.#timeoutMs / 4)) break;
        const share = attempt === 0 ? FIRST_ATTEMPT : attempt === 1 ? SECOND_ATTEMPT : 1;
        const within = Math.max(1, Math.floor(left() * share));
        // Later attempts go alone, on a connection of their own, not behind other calls.
        const alone = attempt > 0;
        try {
          seq = await this.#attempt(writer, native, id, chunk, at, within, alone);
        } catch (err) {
          error = translate(err);
        }
      }
      if (error === undefined) {
        if (mayHaveLanded) metrics.settled("stored");
        return this.#stored(writer, seq, chunk);
      }
      if (error.code !== "STREAM_NOT_ACTIVE") {
        // Nothing of this chunk can have landed and trying again cannot help: say so.
        if (!mayHaveLanded && !outcomeUnknown(error) && !error.retryable) throw error;
        // The server's own statement_timeout / lock_timeout stopped it: again would too.
        if (!mayHaveLanded && ownLimit(error)) throw error;
        mayHaveLanded ||= outcomeUnknown(error);
        lastError = error;
        continue;
      }
      // Refused: the stream is not active, or its count is not `at - 1`. Look.
      const looked = await this.#call(() => native.lookup(id, at, left()));
      if (looked.error) {
        lastError = looked.error;
        continue;
      }
      const look = looked.value;
      if (look === null) throw notActive(id);
      if (mayHaveLanded && look.totalChunks >= at && look.at === chunk) {
        metrics.settled("landed");
        return this.#stored(writer, at, chunk);
      }
      if (
        look.totalChunks < at - 1 ||
        (writer.lastSeq === at - 1 && writer.last !== undefined && look.before !== writer.last)
      ) {
        // The count went backwards, or another text stands where this store wrote: lost
        // writes or a later generation of the stream. Never append into it.
        writer.fenced = look.totalChunks < at - 1 ? wentBack(at - 1, look.totalChunks) : RECREATED;
        throw notActive(id, writer.fenced);
      }
      if (look.state !== "active") throw notActive(id);
      if (look.totalChunks >= at) {
        // Another producer took `at`; this chunk goes after its chunks.
        at = look.totalChunks + 1;
        writer.lastSeq = 0;
        writer.last = undefined;
      }
    }
    if (!mayHaveLanded) throw lastError ?? timedOut(this.#timeoutMs);
    // The chunk may still be stored at `at`, and nowhere else: the next append finds out.
    writer.next = at;
    writer.pending = { at, chunk };
    metrics.settled("unknown");
    throw unknown(id, at, lastError);
  }

  /**
   * One attempt: resolves the seq the chunk was stored at, or rejects as `native.append`
   * does. Through a pg client, a first attempt is sent from here, through the client's
   * `query` with the driver's limits, and Rust hears only the outcome
   * (src/sent_appends.rs): no crossing on the way out, none for the rows.
   */
  #attempt(writer, native, id, chunk, at, within, alone) {
    const direct = this.#direct();
    // A NUL character goes to Rust, which names it; `alone` asks for the pool's side path.
    const begun = direct?.pg && !alone && !chunk.includes("\0") ? this.#begin(native) : -1;
    if (begun < 0) {
      writer.announce = true; // whatever it queued goes out once it settles
      const appended = native.append(id, chunk, at, within, alone);
      this.#inFlight++;
      const done = () => this.#done();
      appended.then(done, done);
      return appended;
    }
    return this.#send(native, direct, begun, id, chunk, at, within);
  }

  /**
   * How an append sent from JS goes: `ticket * 4 + trial * 2 + inside` (`appendBegin`'s
   * answer without its lease and its `settled` bit), or -1 for through Rust. Once Rust
   * has said the statements go out as they are for good, it is asked only when the
   * append is alone and no lease is left: one made while others are in flight announces
   * after its statement (`plain`), and one on a lease goes the lease's way, neither with
   * a ticket (`UNTICKETED`).
   */
  #begin(native) {
    if (this.#asIs) {
      if (this.#inFlight > 0) return UNTICKETED * 4;
      if (this.#lease > 0) {
        this.#lease--;
        this.#used++;
        return UNTICKETED * 4 + (this.#leaseInside ? 1 : 0);
      }
    }
    const begun = native.appendBegin(this.#untold, this.#used);
    this.#untold = undefined;
    this.#used = 0;
    if (begun < 0) return begun;
    const how = begun % 8;
    const rest = (begun - how) / 8;
    this.#asIs = how >= 4;
    this.#lease = Math.floor(rest / UNTICKETED);
    this.#leaseInside = how % 2 === 1;
    return (rest % UNTICKETED) * 4 + (how % 4);
  }

  #send(native, direct, begun, id, chunk, at, within) {
    const ticket = Math.floor(begun / 4);
    let inside = begun % 2 === 1;
    const statements = (this.#statements ??= native.appendStatements);
    if (ticket === UNTICKETED && !inside && statements.combined && this.#inFlight >= direct.width) {
      return new Promise((resolve, reject) => {
        this.#together.push({ native, id, chunk, at, until: Date.now() + within, resolve, reject });
      });
    }
    /** @type {string[] | null} earlier chunks' announcement, carried by this statement */
    let carried = null;
    let deferred = false;
    let sql = inside ? statements.notifying : statements.plain;
    if (inside && this.#asIs && statements.carrying && at !== null && direct.take) {
      const now = performance.now();
      // Announced inside less than `notifyBatchMs` ago, or earlier chunks' announcement is
      // on its way in a transaction of its own: this one's goes later, after those. (Not a
      // trial of the notify choice: it measures the way it was picked.)
      const trial = begun % 4 >= 2;
      if (!trial && this.#batchMs > 0 && (now < this.#quietUntil || direct.publishing())) {
        inside = false;
        deferred = true;
        sql = statements.plain;
      } else {
        this.#quietUntil = now + this.#batchMs;
        carried = this.#takeHeld(direct);
        if (carried !== null) sql = statements.carrying;
      }
    }
    const params = [id, chunk, Date.now() + statements.ttlMs, at];
    if (sql === statements.carrying) params.push(JSON.stringify(carried));
    this.#inFlight++;
    let sent;
    try {
      sent = direct(sql, params, null, within);
    } catch (err) {
      this.#gone(native, ticket, carried);
      throw err;
    }
    return sent.then(
      (outcome) => this.#sent(native, ticket, begun, inside, id, chunk, outcome, deferred, carried),
      (err) => {
        this.#gone(native, ticket, carried);
        throw err;
      },
    );
  }

  /**
   * What this store left to announce (held back, or waiting for the client's next batch),
   * as payloads for a statement to carry; null when nothing is.
   * @returns {string[] | null}
   */
  #takeHeld(direct) {
    // The chunks stored before this one reach Rust first, so they are announced in order.
    if (this.#toTell.length > 0) this.tellRust(false, true);
    if (this.#held !== undefined) clearTimeout(this.#held);
    this.#held = undefined;
    const payloads = direct.take();
    return payloads.length > 0 ? payloads : null;
  }

  /**
   * An append sent from JS whose call threw or failed: what it carried is announced
   * after (the earlier chunks are stored whatever became of this one).
   * @param {string[] | null} [carried]
   */
  #gone(native, ticket, carried = null) {
    this.#done();
    if (carried !== null) this.#direct()?.announce(carried);
    native.appendFailed(ticket);
  }

  /** A statement of this store's appends is done: appends waiting to go together go. */
  #done() {
    this.#inFlight--;
    if (this.#together.length === 0) return;
    const width = this.#direct()?.width ?? Infinity;
    // More than one statement's worth may wait (MOST_COMBINED): each goes while there is room.
    while (this.#together.length > 0 && this.#inFlight < width) this.#combine();
  }

  /**
   * The appends waiting to go together (up to MOST_COMBINED) go out as one statement
   * (`appendStatements.combined`): each stored only at its own seq, as a single append
   * is, so one whose row is not back is refused like one, and settled alone
   * (`#settle`). It never announces: what it stored is announced after, as appends made
   * while others are in flight are.
   */
  #combine() {
    const batch = this.#together.splice(0, MOST_COMBINED);
    const { native } = batch[0];
    const now = Date.now();
    // The time the first of them has left, but never less than an attempt may have: one
    // that waited long must not make the statement too short to settle (it would end
    // unknown for all of them), and the time taken beyond its share stays in its call's.
    let within = Infinity;
    for (const waiting of batch) within = Math.min(within, waiting.until - now);
    within = Math.max(within, Math.min(SHORTEST_ATTEMPT_MS, this.#timeoutMs / 4));
    const direct = this.#direct();
    const statements = /** @type {import("../binding").AppendStatements} */ (this.#statements);
    if (direct === undefined) {
      const err = timedOut(this.#timeoutMs); // never sent
      for (const waiting of batch) waiting.reject(err);
      return;
    }
    const expires = now + statements.ttlMs;
    const ids = batch.map((waiting) => waiting.id);
    const chunks = batch.map((waiting) => waiting.chunk);
    const ats = batch.map((waiting) => waiting.at);
    const params = [ids, chunks, ats.map(() => expires), ats];
    this.#inFlight++;
    const failed = (err) => {
      this.#done();
      for (const waiting of batch) waiting.reject(err);
    };
    let sent;
    try {
      sent = direct(statements.combined, params, null, within);
    } catch (err) {
      failed(err);
      return;
    }
    sent.then((outcome) => this.#combined(native, batch, outcome), failed);
  }

  /** The outcome of appends sent together (`#combine`): each one's seq, or its error. */
  #combined(native, batch, outcome) {
    if (!Array.isArray(outcome)) {
      let error;
      try {
        native.appendFailed(UNTICKETED, outcome); // throws the error `append` would have
        error = new PostgresStoreError("MALFORMED_RESULT", "the appends' outcome was not understood");
      } catch (err) {
        error = err;
      }
      for (const waiting of batch) waiting.reject(error);
      this.#done();
      return;
    }
    /** @type {Map<number, number>} each stored call's seq, by its position from 1 */
    const seqs = new Map();
    for (const row of outcome) seqs.set(Number(row?.ord), Number(row?.seq));
    batch.forEach(({ native, id, chunk, at, resolve, reject }, i) => {
      const seq = seqs.get(i + 1);
      // Not back: refused (not active, not at `at - 1`) or its row locked elsewhere.
      if (seq === undefined || seq !== at) return reject(notActive(id));
      if (this.#toTell.push({ native, ticket: UNTICKETED, id, chunk, seq, notified: false, held: 0 }) === 1) {
        setImmediate(() => this.tellRust());
      }
      resolve(seq);
    });
    this.#done();
  }

  /**
   * The outcome of an append sent from JS (`#send`): its seq, or the error `append` makes.
   * `deferred`: it held its announcement back for a later append to carry; `carried`:
   * the earlier announcements it carried.
   * @param {boolean} [deferred]
   * @param {string[] | null} [carried]
   */
  #sent(native, ticket, begun, inside, id, chunk, outcome, deferred = false, carried = null) {
    this.#done();
    const row = Array.isArray(outcome) ? outcome[0] : undefined;
    // What it carried went out only with its own notification.
    if (carried !== null && row?.notified == null) this.#direct()?.announce(carried);
    if (Array.isArray(outcome)) {
      if (outcome.length === 0) {
        native.appendFailed(ticket);
        throw notActive(id); // refused: not active, or not at `at - 1`
      }
      const seq = Number(row?.seq);
      if (Number.isInteger(seq) && seq >= 1 && seq <= 0x7fffffff) {
        const notified = row.notified != null;
        // Held back for the next to carry, or a trial made without announcing inside:
        // its announcement may wait for the trial's next ones (`tellRust`): how long.
        const held = notified
          ? 0
          : deferred
            ? Math.max(1, Math.ceil(this.#quietUntil - performance.now()) + 1)
            : !inside && begun % 4 >= 2
              ? HELD_MS
              : 0;
        // Rust hears of it once the appender's next statement is out, not in its way.
        if (ticket !== UNTICKETED) this.#untold = ticket;
        if (this.#toTell.push({ native, ticket, id, chunk, seq, notified, held }) === 1) {
          setImmediate(() => this.tellRust());
        }
        return seq;
      }
    }
    native.appendFailed(ticket, outcome); // throws the error `append` would have
    throw new PostgresStoreError("MALFORMED_RESULT", "the append's outcome was not understood");
  }

  /**
   * Tells Rust of the appends sent from JS that stored their chunks, in order
   * (`appendStored`): each chunk goes into this process's tail and to the readers waiting
   * here (those it fed get it from `#fed`), and, unless its own statement announced it,
   * out to other processes. Runs once the appender's next statement is out, or at once
   * when the store closes (`all`).
   *
   * The announcements of a notify choice's trial appends made without announcing inside
   * wait, up to `HELD_MS`, for the next append that is not one: they then go out
   * together, in one transaction instead of one each (a trial is 8 such appends in a row).
   * So do those held back for the next append that announces to carry (`#send`), up to
   * `notifyBatchMs` after the last that did; `carrying`: that append is about to take them.
   */
  tellRust(all = false, carrying = false) {
    const told = this.#toTell;
    this.#toTell = [];
    let announce = false;
    // How long what they leave to announce may wait (0: not at all).
    let wait = all ? 0 : Infinity;
    for (const { native, ticket, id, chunk, seq, notified, held } of told) {
      if (this.#untold === ticket) this.#untold = undefined;
      let fed;
      try {
        fed = native.appendStored(ticket, id, chunk, seq, notified);
      } catch {
        // Only arguments it cannot take throw, before anything is done (these came from
        // this store): never, but a throw here would go uncaught.
        continue;
      }
      if (fed !== null && fed !== undefined) this.#fed(fed, seq, chunk);
      if (!notified) {
        announce = true;
        wait = Math.min(wait, held);
      }
    }
    if (announce && (wait > 0 || carrying)) {
      // Not unref'd: a process about to exit still announces what it stored first.
      this.#held ??= setTimeout(() => this.#announceHeld(), wait);
    } else if (announce || (this.#held !== undefined && (all || told.length > 0))) this.#announceHeld();
  }

  /** What the stored appends left to announce goes out now (and what was held). */
  #announceHeld() {
    if (this.#held !== undefined) clearTimeout(this.#held);
    this.#held = undefined;
    this.#onSettled();
  }

  #stored(writer, seq, chunk) {
    writer.next = seq + 1;
    writer.lastSeq = seq;
    writer.last = chunk;
    return seq;
  }
}

module.exports = { Appends };
