// `npm run demo`: the main job of @aibind-rs/postgres, end to end, against a real
// PostgreSQL (DATABASE_URL, or a throwaway one that `npm run demo` starts).
//
// 1. creates the documented schema, 2. streams a simulated LLM answer through the store
// while one reader tails it live and a late reader resumes from the middle (as a browser
// does after a reload, with Last-Event-ID), 3. saves and reloads a conversation.
import { ChatHistory } from "@aibind/core";
import { PostgresConversationStore, PostgresStreamStore, migrate } from "../index.js";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is not set: run `npm run demo`");

const ms = (start) => `${(performance.now() - start).toFixed(1)} ms`;
const sleep = (n) => new Promise((resolve) => setTimeout(resolve, n));
const log = (...args) => console.log(...args);

// 1. Schema (the stores never create tables; apps run this as a migration).
let t = performance.now();
await migrate(url);
log(`schema ready                         ${ms(t)}`);

// 2. A resumable stream, through the Rust pool (the connection string is all it needs).
const streams = new PostgresStreamStore(url);
const answer =
  "PostgreSQL keeps every token of this answer, so a reader that drops out can come back " +
  "and carry on from the last chunk it saw, and a reader that arrives late still gets " +
  "the whole story, in order, exactly once.";
const tokens = /** @type {string[]} */ (answer.match(/\S+\s*/g));
const id = `demo-${Date.now()}`;

t = performance.now();
await streams.create(id);
log(`stream ${id} created      ${ms(t)}`);

// Latency from the append call to the live reader: the reader often has a chunk before
// append() resolves in the writer, so the clock starts when append is called. The
// stream is new, so the i-th append takes seq i + 1.
const lag = [];
const calledAt = [];
const live = (async () => {
  let text = "";
  for await (const chunk of streams.readFrom(id, 0)) {
    lag.push(performance.now() - calledAt[chunk.seq - 1]);
    text += chunk.data;
  }
  return text;
})();

/** @type {Promise<{ resumeAfter: number, first: number | undefined, text: string }> | undefined} */
let late;
const writeStart = performance.now();
for (const [i, token] of tokens.entries()) {
  calledAt[i] = performance.now();
  const seq = await streams.append(id, token);
  if (seq !== i + 1) throw new Error(`append ${i + 1} took seq ${seq}`);
  if (i === Math.floor(tokens.length / 2)) {
    // A second reader joins mid-stream, resuming after the seq its client last saw.
    const resumeAfter = seq - 5;
    late = (async () => {
      let text = "";
      let first;
      for await (const chunk of streams.readFrom(id, resumeAfter)) {
        first ??= chunk.seq;
        text += chunk.data;
      }
      return { resumeAfter, first, text };
    })();
  }
  await sleep(10); // the model "thinking" between tokens
}
await streams.complete(id);
const appendTime = performance.now() - writeStart;

const liveText = await live;
const resumed = /** @type {{ resumeAfter: number, first: number | undefined, text: string }} */ (await late);
const status = await streams.getStatus(id);
const sorted = [...lag].sort((a, b) => a - b);
const latencyOk = sorted.length === tokens.length && sorted.every(Number.isFinite);
log(`appended ${tokens.length} chunks                  ${appendTime.toFixed(1)} ms (incl. 10 ms pauses)`);
log(`live reader got the whole answer:     ${liveText === answer}`);
log(
  `  chunk latency append->reader:       p50 ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} ms, max ${sorted.at(-1).toFixed(1)} ms (from the append call; woken on each write)`,
);
log(
  `late reader resumed after seq ${resumed.resumeAfter}:    first chunk seq ${resumed.first}, rest matches: ${answer.endsWith(resumed.text)}`,
);
log(`status:                               ${JSON.stringify(status)}`);
t = performance.now();
let replayed = "";
for await (const chunk of streams.readFrom(id, 0)) replayed += chunk.data;
log(`full replay after completion          ${ms(t)} (${replayed === answer ? "identical" : "DIFFERENT"})`);

// 3. A conversation, saved and loaded back.
const conversations = new PostgresConversationStore(url);
const chat = new ChatHistory([
  { role: "user", content: "Why store tokens in PostgreSQL?" },
  { role: "assistant", content: answer },
]);
t = performance.now();
await conversations.save(`session-${id}`, chat);
log(`conversation saved                    ${ms(t)}`);
t = performance.now();
const loaded = await conversations.load(`session-${id}`);
log(
  `conversation loaded                   ${ms(t)} (${loaded.messages.length} messages, equal: ${JSON.stringify(loaded.messages) === JSON.stringify(chat.messages)})`,
);

await streams.close();
await conversations.close();
const ok =
  latencyOk && liveText === answer && answer.endsWith(resumed.text) && replayed === answer && status?.state === "done";
log(ok ? "demo OK" : "demo FAILED");
process.exitCode = ok ? 0 : 1; // and nothing keeps the process alive
