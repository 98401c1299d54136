// PostgresConversationStore: chat histories as JSON, `ChatHistory` from the optional peer
// @aibind/core.
"use strict";

const { NativeConversationStore } = require("./binding.cjs");
const { storeError, run } = require("./errors.cjs");
const { describe, invalid, text, nativeOptions } = require("./options.cjs");
const { Store, traced, direct } = require("./store.cjs");
const { Lane, plainId, textsByCall } = require("./lane.cjs");
const { ROWS_AS_ARRAYS } = require("./driver.cjs");

/** @type {(store: object) => import("../binding").NativeConversationStore} the store's native half */
const native = /** @type {any} */ (require("./store.cjs").native);

let core;
const CORE = "@aibind/core";

/** `ChatHistory` from the optional peer @aibind/core, imported on first use. */
async function chatHistoryClass() {
  // A variable specifier and ignore comments: bundlers leave this import to Node instead
  // of failing the build when the optional peer is not installed.
  core ??= import(/* webpackIgnore: true */ /* turbopackIgnore: true */ /* @vite-ignore */ CORE).catch((err) => {
    core = undefined;
    throw storeError(
      "MISSING_PEER_DEPENDENCY",
      "PostgresConversationStore.load() returns a ChatHistory from @aibind/core, which is not " +
        "installed: run `npm install @aibind/core`, or use loadJSON() to get the stored JSON " +
        `(${err?.message ?? err})`,
    );
  });
  return (await core).ChatHistory;
}

class PostgresConversationStore extends Store {
  /** The table, as diagnostics events name it. */
  #table;
  /** A JS client's loads and saves, combined when several are made at once (lib/lane.cjs). */
  #loads;
  #saves;

  constructor(client, options) {
    const opts = nativeOptions(options);
    const table = typeof opts.table === "string" ? opts.table : "aibind_conversations";
    super(NativeConversationStore, client, options, { kind: "conversation", cleaned: table });
    this.#table = table;
    const query = direct(this);
    const single = {
      load: (id) => run(() => native(this).loadJSON(id)),
      save: (id, json) => run(() => native(this).saveJSON(id, json)),
    };
    if (query === undefined) {
      this.#loads = { call: (_plain, id) => single.load(id), flush() {} };
      this.#saves = { call: (_plain, id, json) => single.save(id, json), flush() {} };
      return;
    }
    // None on Citus: the calls then go alone.
    const formsOf = () => native(this).combinedForms;
    this.#loads = new Lane(single.load, async (calls) => {
      const forms = formsOf();
      if (!forms) return null;
      const now = Date.now();
      const ids = calls.map(([id]) => id);
      return textsByCall(await query(forms.load, [ids, ids.map(() => now)], ROWS_AS_ARRAYS), calls.length);
    });
    this.#saves = new Lane(single.save, async (calls) => {
      const forms = formsOf();
      if (!forms) return null;
      const { save, ttlMs } = forms;
      const expires = Date.now() + ttlMs;
      const params = [calls.map(([id]) => id), calls.map(([, json]) => json), calls.map(() => expires)];
      const outcome = await query(save, params, "");
      return Array.isArray(outcome?.columns) ? calls.map(() => undefined) : null;
    });
  }

  /** Conversation calls made just before, still waiting for their microtask (lib/lane.cjs), go out first. */
  close() {
    if (this !== null && typeof this === "object" && #saves in this) {
      this.#saves.flush();
      this.#loads.flush();
    }
    return super.close();
  }

  async load(sessionId) {
    const [ChatHistory, json] = await Promise.all([chatHistoryClass(), this.loadJSON(sessionId)]);
    return json === null ? new ChatHistory() : ChatHistory.fromJSON(json);
  }

  save(sessionId, chat) {
    return traced(
      this,
      "conversation:save",
      () => this.#table,
      sessionId,
      () =>
        run(() => {
          if (chat === null || typeof chat !== "object" || typeof chat.toJSON !== "function") {
            throw invalid(`chat must be a ChatHistory (an object with toJSON()), got ${describe(chat)}`);
          }
          const json = chat.toJSON();
          if (typeof json !== "string") {
            throw invalid(`chat.toJSON() must return a string (ChatHistory's JSON), got ${describe(json)}`);
          }
          native(this);
          return this.#save(text("sessionId", sessionId), text("chat.toJSON()", json));
        }),
    );
  }

  /** The stored JSON of an unexpired session, or null. */
  loadJSON(sessionId) {
    return traced(
      this,
      "conversation:load",
      () => this.#table,
      sessionId,
      () =>
        run(() => {
          native(this); // a wrong `this`, or a closed store, says so first
          const id = text("sessionId", sessionId);
          return this.#loads.call(plainId(id), id);
        }),
    );
  }

  /** Stores a history's JSON text as it is. */
  saveJSON(sessionId, json) {
    return traced(
      this,
      "conversation:save",
      () => this.#table,
      sessionId,
      () =>
        run(() => {
          native(this);
          return this.#save(text("sessionId", sessionId), text("json", json));
        }),
    );
  }

  /** Saves `json` (checked to be text) for the session `id`. */
  #save(id, json) {
    return this.#saves.call(plainId(id) && !json.includes("\0"), id, json);
  }

  delete(sessionId) {
    return traced(
      this,
      "conversation:delete",
      () => this.#table,
      sessionId,
      () => run(() => native(this).delete(text("sessionId", sessionId))),
    );
  }
}

if (typeof Symbol.asyncDispose === "symbol") {
  PostgresConversationStore.prototype[Symbol.asyncDispose] = PostgresConversationStore.prototype.close;
}

module.exports = { PostgresConversationStore };
