// PostgresStreamStore: argument checks, exactly-once appends (lib/appends.cjs), the async
// generator of readFrom over native pages (src/reader.rs), stopSignal.
"use strict";

const { NativeStreamStore } = require("./binding.cjs");
const { PostgresStoreError, run, translate } = require("./errors.cjs");
const { Appends } = require("./appends.cjs");
const { text, seqArgument, nativeOptions } = require("./options.cjs");
const { Store, wrote, waiting, traced, direct } = require("./store.cjs");
const { replay, pageOf } = require("./replay.cjs");
const { plainId } = require("./lane.cjs");
const { mark, callerContext, within, state: telemetry } = require("./telemetry.cjs");
const { delivered } = require("./metrics.cjs");
const { quiet } = require("./diagnostics.cjs");

/** @type {(store: object) => import("../binding").NativeStreamStore} the store's native half */
const native = /** @type {any} */ (require("./store.cjs").native);

/**
 * How often a reader fed chunk after chunk tells its client's hub it still waits (the
 * hub keeps its shared check running and closes a listener no one needs; lib/client-hub.cjs).
 */
const STILL_WAITING_MS = 100;

/** A timer that never keeps the process alive. */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref?.());
}

/** One wait of a reader (`ReaderWakes.pause`): until it is woken, chunks it was fed. */
class Wait {
  /** Chunks handed to it while it waits (`fed`), not yet taken, in seq order. */
  /** @type {{ seq: number, data: string }[]} */
  fed = [];
  /** Woken: the wait is over (what it was fed is still to be taken). */
  woken = false;
  /** @type {((value?: unknown) => void) | null} the reader awaiting news, if any */
  resolve = null;
  /** @param {boolean} keepsAlive */
  constructor(keepsAlive) {
    this.keepsAlive = keepsAlive;
  }
}

/**
 * The readers of one store waiting for news (`pauseThen`): each has a token, and Rust
 * calls `woken` once with the tokens of all the readers it let go on
 * (src/waker.rs). A reader of an unobserved read may instead be fed, while it waits, the
 * chunks this store sends from JS right after its cursor (`fed`, from `appendStored`):
 * no page crosses from Rust, and it goes on waiting without registering again. While any
 * reader waits, a timer keeps the process alive, as a pending promise of the original's
 * polling reader does. A stop signal's watcher waits the same way but keeps nothing
 * alive: a process whose work is done exits, as it would with an AbortSignal of its own.
 */
class ReaderWakes {
  /** @type {Map<number, Wait>} */
  #waiting = new Map();
  #next = 0;
  /** Waiting readers that keep the process alive. */
  #keeping = 0;
  /**
   * Keeps the process alive while `#keeping` > 0: made once, then referenced and
   * unreferenced (a reader at the end of a live stream waits once per chunk, and making
   * and clearing a timer each time cost more than the rest of its wait in JS).
   * @type {ReturnType<typeof setInterval> | null}
   */
  #keepAlive = null;

  /**
   * Starts a wait: `news(wait)` resolves once it is woken or fed.
   * @param {import("../binding").NativeStreamReader} reader
   * @param {boolean} [keepsAlive] false for a stop signal's watcher
   * @param {boolean} [feed] it may be fed chunks (an unobserved read)
   */
  pause(reader, keepsAlive = true, feed = false) {
    const token = (this.#next = (this.#next + 1) >>> 0);
    const wait = new Wait(keepsAlive);
    this.#waiting.set(token, wait);
    if (keepsAlive && this.#keeping++ === 0) (this.#keepAlive ??= setInterval(() => {}, 1 << 30)).ref();
    reader.pauseThen(token, feed);
    return wait;
  }

  /** Null when the wait has news already (it was woken, or fed), else a promise of it. */
  news(wait) {
    if (wait.woken || wait.fed.length > 0) return null;
    return new Promise((resolve) => (wait.resolve = resolve));
  }

  /**
   * @param {number[]} tokens
   * @param {boolean} [later] woken by a write this thread just settled: the readers go
   *   after the callbacks running now, so that the writer's next statement goes out first
   */
  woken(tokens, later = false) {
    if (later) {
      setImmediate(() => this.woken(tokens));
      return;
    }
    for (const token of tokens) {
      const wait = this.#waiting.get(token);
      if (wait === undefined) continue;
      this.#waiting.delete(token);
      if (wait.keepsAlive && --this.#keeping === 0) this.#keepAlive?.unref();
      wait.woken = true;
      letGo(wait);
    }
  }

  /**
   * The waits of `tokens` took chunk `seq` (`data`), stored by this store (told once the
   * writer's next statement is out): each gets its own `{ seq, data }`, and its reader
   * goes on.
   * @param {number[]} tokens
   */
  fed(tokens, seq, data) {
    for (const token of tokens) {
      const wait = this.#waiting.get(token);
      if (wait === undefined) continue;
      wait.fed.push({ seq, data });
      letGo(wait);
    }
  }
}

/** Lets the reader awaiting `wait`'s news, if any, go on. */
function letGo(wait) {
  const resolve = wait.resolve;
  if (resolve === null) return;
  wait.resolve = null;
  resolve();
}

/**
 * A reader's `next()` while the reader waits and is fed (an unobserved read of a stream
 * this store writes, lib/appends.cjs): each chunk fed goes to the app from here, in one
 * promise, without resuming the generator, which stays at the fed chunk it yielded
 * last. The generator goes on (its own `next()`) once the wait is woken (the stream
 * finished, or news came that only a page can tell), or when it is not in such a wait.
 * So a live reader of a producer in its own process costs no generator step a chunk,
 * and V8 does not find the generator's big body hot for it.
 */
class Feed {
  /** @type {Wait | null} the wait the generator is at a fed chunk's `yield` in */
  wait = null;
  /**
   * The `next()` calls not yet settled, and the promise of the last one made: a call is
   * answered only once every call made before it is, as the generator answers its own.
   */
  #open = 0;
  /** @type {Promise<IteratorResult<any>>} */
  #last = Promise.resolve({ value: undefined, done: true });
  /** @type {(() => void) | null} ends the `next()` awaiting news here as done (`return()`, `throw()`) */
  #end = null;
  /** When the hub was last told that the reader still waits (`STILL_WAITING_MS`). */
  said = -Infinity;
  /** @type {() => void} tells the hub the reader still waits (`waiting(store, reader, false)`) */
  stillWaiting = () => {};

  /**
   * The generator with its `next()`, `return()` and `throw()` going through the feed.
   * @template T
   * @param {AsyncGenerator<T, void, undefined>} gen
   */
  attach(gen) {
    const { next, return: end, throw: fail } = gen;
    gen.next = (value) => this.#next(gen, next, value);
    gen.return = (value) => {
      this.#leave();
      return end.call(gen, value);
    };
    gen.throw = (err) => {
      this.#leave();
      return fail.call(gen, err);
    };
    return gen;
  }

  /** The generator's next chunk: fed, or from the generator itself, in call order. */
  #next(gen, next, value) {
    if (this.#open > 0) {
      // After the calls made before it (whatever they settle with).
      const step = () => this.#step(gen, next, value, false);
      return this.#track(this.#last.then(step, step));
    }
    return this.#step(gen, next, value, true);
  }

  /**
   * Answers a call once no call made before it is open; `own`: the call is counted here
   * (else it is a call that waited, counted as a whole by `#track`).
   */
  #step(gen, next, value, own) {
    const wait = this.wait;
    if (wait !== null && wait.fed.length > 0) {
      const answer = Promise.resolve(this.#take(wait));
      if (own) this.#last = answer;
      return answer;
    }
    if (wait === null || wait.woken) {
      this.wait = null;
      const answer = next.call(gen, value);
      return own ? this.#track(answer) : answer;
    }
    if (own) this.#open++;
    const answer = new Promise((resolve) => {
      // Called by `letGo` as the wait is fed or woken.
      wait.resolve = () => {
        this.#end = null;
        if (wait.fed.length > 0) {
          if (own) this.#open--;
          resolve(this.#take(wait));
          return;
        }
        this.wait = null;
        const gone = next.call(gen, value);
        if (own) {
          const settled = () => void this.#open--;
          gone.then(settled, settled);
        }
        resolve(gone);
      };
      this.#end = () => {
        wait.resolve = null;
        if (own) this.#open--;
        resolve({ value: undefined, done: true });
      };
    });
    if (own) this.#last = answer;
    return answer;
  }

  /** `answer` is open until it settles. */
  #track(answer) {
    this.#open++;
    const settled = () => void this.#open--;
    answer.then(settled, settled);
    return (this.#last = answer);
  }

  /** The wait's first fed chunk, as an iterator result. */
  #take(wait) {
    if (!wait.woken && Date.now() - this.said >= STILL_WAITING_MS) {
      this.said = Date.now();
      this.stillWaiting();
    }
    return { value: /** @type {{ seq: number, data: string }} */ (wait.fed.shift()), done: false };
  }

  /** The app leaves the reader: a `next()` awaiting news here ends as done, and the generator goes on. */
  #leave() {
    const end = this.#end;
    this.#end = null;
    this.wait = null;
    end?.();
  }
}

class PostgresStreamStore extends Store {
  #appends;
  #pollIntervalMs;
  /** @type {Map<string, AbortController>} */
  #stopSignals = new Map();
  /** @type {ReaderWakes | undefined} made with the first reader */
  #wakes;

  /** The two tables, as diagnostics events name them. */
  #chunks;
  #status;
  /** @type {import("../binding").PageStatement | undefined} a reader's page, for lib/replay.cjs */
  #pageStatement;
  /** @type {Map<string, Promise<any>>} pages read in JS now, by cursor and stream id */
  #pagesInFlight = new Map();

  constructor(client, options) {
    const opts = nativeOptions(options);
    const status = typeof opts.statusTable === "string" ? opts.statusTable : "aibind_stream_status";
    super(NativeStreamStore, client, options, { kind: "stream", cleaned: status });
    this.#chunks = typeof opts.chunksTable === "string" ? opts.chunksTable : "aibind_stream_chunks";
    this.#status = status;
    // Once an append settles, what it wrote goes out to other processes (JS clients).
    const batchMs = opts.notifyBatchMs ?? 2;
    this.#appends = new Appends(
      () => native(this),
      opts.queryTimeoutMs ?? 30_000,
      batchMs,
      () => wrote(this, batchMs),
      () => direct(this),
      (tokens, seq, chunk) => this.#wakes?.fed(tokens, seq, chunk),
    );
    this.#pollIntervalMs = opts.pollIntervalMs ?? 100;
  }

  create(id) {
    return traced(
      this,
      "stream:create",
      () => this.#status,
      id,
      () =>
        run(async () => {
          await native(this).create(text("stream id", id));
          this.#appends.created(id);
        }),
    );
  }

  /** What its appends stored goes to this process's readers and out first (lib/appends.cjs). */
  close() {
    if (this !== null && typeof this === "object" && #appends in this) this.#appends.tellRust(true);
    return super.close();
  }

  /**
   * Resolves the seq the chunk was stored at, exactly once; rejects only when it was not
   * stored and never will be, or with APPEND_OUTCOME_UNKNOWN (see lib/appends.cjs).
   */
  append(id, chunk) {
    return traced(
      this,
      "stream:append",
      () => this.#chunks,
      id,
      () => {
        // Not through `run`: what the appends reject with is a PostgresStoreError already.
        try {
          native(this);
          return this.#appends.append(text("stream id", id), text("chunk", chunk));
        } catch (err) {
          return Promise.reject(translate(err));
        }
      },
    );
  }

  /**
   * An AbortSignal that aborts when the stream leaves `active` (stop, complete, fail,
   * removed) through any store in any process: pass it to the model call so a Stop
   * reaches the producer at once. In-process wake-ups and NOTIFY feed it; JS clients
   * also look every `pollIntervalMs`. One signal per stream and store.
   */
  stopSignal(id) {
    native(this);
    text("stream id", id);
    const known = this.#stopSignals.get(id);
    if (known) return known.signal;
    const controller = new AbortController();
    this.#stopSignals.set(id, controller);
    this.#watchStop(id, controller);
    return controller.signal;
  }

  async #watchStop(id, controller) {
    try {
      for (;;) {
        try {
          const reader = await run(() => native(this).stopWatcher(id));
          try {
            while ((await run(() => reader.nextPage())) !== null) {
              waiting(this);
              const wakes = this.#readerWakes();
              await wakes.news(wakes.pause(reader, false));
            }
          } finally {
            reader.release();
          }
          break;
        } catch (err) {
          if (this.closed) return; // a closed store can no longer tell: it does not abort
          await sleep(this.#pollIntervalMs);
        }
      }
      if (this.closed) return;
      controller.abort(new PostgresStoreError("STREAM_NOT_ACTIVE", `Stream "${id}" not found or not active`));
    } finally {
      this.#stopSignals.delete(id);
    }
  }

  /** The store's waiting readers; the native store calls `woken` (src/waker.rs). */
  #readerWakes() {
    if (this.#wakes === undefined) {
      const wakes = new ReaderWakes();
      native(this).onWake((tokens, later) => wakes.woken(tokens, later)); // not `this`: native holds it
      this.#wakes = wakes;
    }
    return this.#wakes;
  }

  /**
   * The chunks after `afterSeq`, then each as it is written, until the stream finishes.
   * With an OpenTelemetry SDK, every page's span sits under the caller's active span at
   * this call, wherever the generator is then driven from (a pull of a ReadableStream, a
   * span of the app's own around each `next()`).
   */
  readFrom(id, afterSeq) {
    const caller = callerContext();
    if (!(#appends in this)) return wrongThis(this);
    const feed = new Feed();
    return feed.attach(this.#read(id, afterSeq, caller, feed));
  }

  /** @param {Feed} feed what the generator's `next()` takes fed chunks from meanwhile */
  async *#read(id, afterSeq, caller, feed) {
    native(this); // a closed store says so first
    const stream = text("stream id", id);
    const after = seqArgument(afterSeq);
    const query = direct(this);
    const reader = await run(() => native(this).reader(stream, after, ...this.#appends.knows(id)));
    const wakes = this.#readerWakes();
    const retryFor = native(this).retryReadsForMs;
    /** When the page last asked for was (performance.now()), while the delivery lag is measured. */
    let asked = 0;
    /**
     * @param {number} [waitedMs] how long the reader waited for news before this page
     * @param {boolean} [prefetched] asked for while the app still takes the page before
     */
    const fetch = (waitedMs = undefined, prefetched = false) => {
      if (!prefetched && caller === undefined && quiet("stream:read")) {
        // Nobody observes it: a page the native half knows comes as it is (no promise).
        let got;
        try {
          got = reader.nextPage();
        } catch (err) {
          return Promise.reject(translate(err));
        }
        if (got === null || got === undefined || typeof (/** @type {any} */ (got).then) !== "function") return got;
        const page = run(() => got);
        page.catch(() => {}); // awaited below, unless the reader is left first
        return page;
      }
      const extra = waitedMs !== undefined ? { waitedMs } : prefetched ? PREFETCHED : {};
      const page = within(caller, () =>
        traced(
          this,
          "stream:read",
          () => this.#chunks,
          id,
          () =>
            run(() => {
              mark();
              if (telemetry.lag) asked = performance.now();
              return reader.nextPage();
            }),
          extra,
        ),
      );
      page.catch(() => {}); // awaited below, unless the reader is left first
      return page;
    };
    try {
      if (query !== undefined && Number.isInteger(after) && after >= 0 && after <= 2e9 && plainId(stream)) {
        // A JS client: what is stored already is read in JS (lib/replay.cjs), the rest by
        // the native reader, made first so that what happens meanwhile is news to it.
        const { text: sql, rows, smallBytes } = (this.#pageStatement ??= native(this).pageStatement);
        // Readers at one cursor at once (opened together) share one statement.
        const page = (from) => {
          const key = `${from} ${stream}`;
          const shared = this.#pagesInFlight.get(key);
          if (shared !== undefined) return shared;
          const params = [stream, from, from + rows, smallBytes];
          /** @type {Promise<any>} */
          const read = within(caller, () =>
            traced(
              this,
              "stream:read",
              () => this.#chunks,
              id,
              () => query(sql, params, null).then((rows) => pageOf(rows, from, fail)),
            ),
          );
          this.#pagesInFlight.set(key, read);
          const landed = () => this.#pagesInFlight.delete(key);
          read.then(landed, landed);
          return read;
        };
        // A failed page throws the error the native reader would have; a retryable one
        // leaves it to the native reader, which retries for `retryReadsForMs`.
        const fail = (outcome) => {
          try {
            reader.pageFailure(outcome);
          } catch (err) {
            const error = translate(err);
            if (!error.retryable) throw error;
          }
        };
        const cursor = { after, total: -1, ended: false };
        for await (const { seqs, datas } of replay(page, cursor, rows)) {
          for (let i = 0; i < seqs.length; i++) yield { seq: seqs[i], data: datas[i] };
        }
        if (cursor.ended) return;
        if (cursor.total >= 0) reader.replayed(cursor.after, cursor.total);
      }
      /**
       * The next page (a StreamPage, or null at the end), or a promise of it; null while
       * none is asked for ahead.
       * @type {any}
       */
      let next = fetch();
      let failingSince = 0;
      let backoff = 50;
      for (;;) {
        let page;
        try {
          page = next !== null && typeof next?.then === "function" ? await next : next;
        } catch (err) {
          // The database went away or was too slow: try again from the cursor (nothing
          // missed or repeated) until `retryReadsForMs` has passed.
          failingSince ||= Date.now();
          if (!err.retryable || Date.now() - failingSince >= retryFor) throw err;
          await sleep(Math.min(backoff, retryFor));
          backoff = Math.min(backoff * 2, 2000);
          next = fetch();
          continue;
        }
        failingSince = 0;
        backoff = 50;
        if (page === null || page === undefined) return;
        const { seqs, text, ends, ages } = page;
        if (seqs.length > 0) {
          const made = asked;
          // More is there already: fetch it while this page is handed out.
          next = reader.hasMore ? fetch(undefined, true) : null;
          if (ages) {
            // A page this process knew, while the delivery lag is measured: each chunk's
            // age when the page was made, and the time since, as it is handed to the app.
            const heard = page.heard;
            for (let i = 0, start = 0; i < seqs.length; start = ends[i++]) {
              const age = ages[i];
              if (age === age) delivered(age + performance.now() - made, heard[i] === 1); // NaN: not known
              yield { seq: seqs[i], data: text.slice(start, ends[i]) };
            }
          } else {
            for (let i = 0, start = 0; i < seqs.length; start = ends[i++]) {
              yield { seq: seqs[i], data: text.slice(start, ends[i]) };
            }
          }
          if (next !== null) continue;
        }
        // At the end as far as this reader knows: wait for news (at once if some came
        // while the page was handed out, or if the stream finished), then look. An
        // unobserved read takes, meanwhile, what this store appends right after it.
        waiting(this, reader);
        const since = performance.now();
        const fed = caller === undefined && quiet("stream:read");
        const wait = wakes.pause(reader, true, fed);
        // Waiting on, as a new wait would, for a stream this process now writes (the
        // store wrote what it was fed): it needs no listener. Said again at most every
        // STILL_WAITING_MS, not for each chunk fed.
        feed.said = -Infinity;
        feed.stillWaiting = () => waiting(this, reader, false);
        do {
          const news = wakes.news(wait);
          if (news !== null) await news;
          for (let chunk; (chunk = wait.fed.shift()) !== undefined;) {
            // Until the generator goes on from here, its `next()` hands out what is fed.
            feed.wait = wait;
            yield chunk;
            feed.wait = null;
          }
          if (!wait.woken && wait.fed.length === 0 && Date.now() - feed.said >= STILL_WAITING_MS) {
            feed.said = Date.now();
            feed.stillWaiting();
          }
        } while (!wait.woken);
        next = fetch(Math.round(performance.now() - since));
      }
    } finally {
      reader.release();
    }
  }

  async getStatus(id) {
    // napi gives a missing status as null (binding.d.ts also allows undefined).
    const status = /** @type {import("../binding").DurableStreamStatus | null} */ (
      await traced(
        this,
        "stream:getStatus",
        () => this.#status,
        id,
        () => run(() => native(this).getStatus(text("stream id", id))),
      )
    );
    if (status === null) return null;
    return { state: status.state, error: status.error ?? undefined, totalChunks: status.totalChunks };
  }

  /** A finish through this store: its writer knows the stream finished once it is done. */
  async #finished(id, finishing) {
    const result = await finishing;
    this.#appends.finished(id);
    return result;
  }

  stop(id) {
    return traced(
      this,
      "stream:stop",
      () => this.#status,
      id,
      () => run(() => this.#finished(id, native(this).stop(text("stream id", id)))),
    );
  }

  complete(id) {
    return traced(
      this,
      "stream:complete",
      () => this.#status,
      id,
      () => run(() => this.#finished(id, native(this).complete(text("stream id", id)))),
    );
  }

  fail(id, error) {
    return traced(
      this,
      "stream:fail",
      () => this.#status,
      id,
      () => run(() => this.#finished(id, native(this).fail(text("stream id", id), text("error", error)))),
    );
  }
}

/** What a prefetched page's diagnostics event (and span) says of it. */
const PREFETCHED = Object.freeze({ prefetched: true });

/** `readFrom` called on something that is no stream store: its first `next()` says so. */
// eslint-disable-next-line require-yield -- it only throws, as `readFrom`'s body would
async function* wrongThis(store) {
  native(store);
}

if (typeof Symbol.asyncDispose === "symbol") {
  PostgresStreamStore.prototype[Symbol.asyncDispose] = PostgresStreamStore.prototype.close;
}

module.exports = { PostgresStreamStore };
