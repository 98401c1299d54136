// The end-to-end checks both apps pass: POST starts a stream on server A; SSE readers on
// A and on B (another process) follow it live; a reader joins mid-stream; after it ends,
// resuming with Last-Event-ID and with ?after= gives exactly the rest.
import { readEvents } from "./sse.mjs";

const TOKENS = 60; // at MODEL_DELAY_MS = 20: written over about 1.2 s

function expectEvents(what, result, from, words) {
  const fail = (why) => {
    throw new Error(
      `${what}: ${why}; got ${JSON.stringify({ ...result, events: result.events.map(({ id, data }) => ({ id, data })) }).slice(0, 2000)}`,
    );
  };
  if (result.status !== 200) fail(`status ${result.status}`);
  if (!result.type?.startsWith("text/event-stream")) fail(`content-type ${result.type}`);
  // The last event says the stream is over (so a browser's EventSource stops), and how.
  const end = result.events.at(-1);
  if (end?.type !== "end" || end.data?.state !== "done") fail("the last event is not `end` with state done");
  result = { ...result, events: chunksOf(result) };
  const ids = result.events.map((e) => e.id);
  const want = Array.from({ length: TOKENS - from }, (_, i) => from + i + 1);
  if (JSON.stringify(ids) !== JSON.stringify(want)) fail(`ids ${ids.join(",")} instead of ${from + 1}..${TOKENS}`);
  const text = result.events.map((e) => e.data).join("");
  const expected = words
    .slice(from)
    .map((w, i) => (from + i === 0 ? w : ` ${w}`))
    .join("");
  if (text !== expected) fail(`text ${JSON.stringify(text)} instead of ${JSON.stringify(expected)}`);
}

/** The chunks' events: all but the `end` event. */
const chunksOf = (result) => result.events.filter((e) => e.type === undefined);

/** How long the events took to arrive: a replay comes at once, a live stream over time. */
const spread = (result) => {
  const chunks = chunksOf(result);
  return chunks.length < 2 ? 0 : chunks.at(-1).at - chunks[0].at;
};

export async function checkStreams(name, a, b) {
  const words = Array.from({ length: TOKENS }, (_, i) => `w${i + 1}`);
  const posted = await fetch(`${a.base}/api/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: words.join(" ") }),
  });
  if (posted.status !== 200)
    throw new Error(`${name}: POST /api/stream answered ${posted.status}: ${await posted.text()}`);
  const { id } = await posted.json();
  const path = `/api/stream/${id}`;

  // Live from the start, on the writing server and on the other one.
  const liveA = readEvents(`${a.base}${path}`);
  const liveB = readEvents(`${b.base}${path}`);
  // Joining mid-stream: what was written is replayed, the rest comes live.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const joined = readEvents(`${b.base}${path}?after=0`);

  const [ra, rb, rj] = await Promise.all([liveA, liveB, joined]);
  expectEvents(`${name}: live reader on the writing server`, ra, 0, words);
  expectEvents(`${name}: live reader on the other server`, rb, 0, words);
  expectEvents(`${name}: reader joining live`, rj, 0, words);
  for (const [what, result, atLeast] of /** @type {[string, typeof ra, number][]} */ ([
    ["on the writing server", ra, 600],
    ["on the other server", rb, 600],
    ["joining live", rj, 200],
  ])) {
    if (spread(result) < atLeast)
      throw new Error(`${name}: the reader ${what} got every chunk within ${spread(result).toFixed(0)} ms: not live`);
  }

  // The stream is done: resume as EventSource reconnecting, and as a reloaded page.
  expectEvents(`${name}: full replay`, await readEvents(`${b.base}${path}`), 0, words);
  expectEvents(
    `${name}: resume with Last-Event-ID: 10`,
    await readEvents(`${a.base}${path}`, { "last-event-id": "10" }),
    10,
    words,
  );
  expectEvents(`${name}: resume with ?after=25`, await readEvents(`${b.base}${path}?after=25`), 25, words);
  expectEvents(
    `${name}: Last-Event-ID 40 wins over ?after=10`,
    await readEvents(`${a.base}${path}?after=10`, { "last-event-id": "40" }),
    40,
    words,
  );
  console.log(
    `test:frameworks: ${name}: live ${chunksOf(ra).length} + ${chunksOf(rb).length} chunks over ${spread(ra).toFixed(0)}/${spread(rb).toFixed(0)} ms, joined live, resumed by Last-Event-ID and ?after=`,
  );
}

/**
 * Stop pressed while the model writes: DELETE on server B stops the stream that server A
 * produces; A's producer is aborted by its stopSignal, and readers on both servers end
 * at once, after the last chunk written.
 */
export async function checkStop(name, a, b) {
  const words = Array.from({ length: 400 }, (_, i) => `s${i + 1}`); // 8 s at 20 ms a token
  const posted = await fetch(`${a.base}/api/stream`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: words.join(" ") }),
  });
  const { id } = await posted.json();
  const path = `/api/stream/${id}`;
  const readers = [readEvents(`${a.base}${path}`), readEvents(`${b.base}${path}`)];
  await new Promise((resolve) => setTimeout(resolve, 400));
  const stopped = performance.now();
  const deleted = await fetch(`${b.base}${path}`, { method: "DELETE" });
  if (deleted.status !== 204) throw new Error(`${name}: DELETE answered ${deleted.status}`);
  const [ra, rb] = await Promise.all(readers);
  const ended = performance.now() - stopped;
  for (const [server, result] of /** @type {[string, typeof ra][]} */ ([
    ["A", ra],
    ["B", rb],
  ])) {
    const end = result.events.at(-1);
    if (end?.type !== "end" || end.data?.state !== "stopped")
      throw new Error(`${name}: stop: the reader on ${server} did not end with an \`end\` event of state stopped`);
  }
  const count = chunksOf(ra).length;
  if (count === 0 || count >= words.length)
    throw new Error(`${name}: stop: ${count} chunks, not a stream stopped midway`);
  if (JSON.stringify(chunksOf(ra).map((e) => e.id)) !== JSON.stringify(chunksOf(rb).map((e) => e.id)))
    throw new Error(`${name}: stop: the two servers' readers saw different chunks`);
  if (ended > 2_000) throw new Error(`${name}: stop: the readers ended ${ended.toFixed(0)} ms after DELETE`);
  // Nothing is written after the stop: the producer was aborted, not left to run.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const again = await readEvents(`${a.base}${path}`);
  if (chunksOf(again).length !== count)
    throw new Error(`${name}: stop: ${chunksOf(again).length - count} chunks written after the stop`);
  console.log(
    `test:frameworks: ${name}: DELETE on the other server stopped the stream after ${count} chunks; readers on both ended ${ended.toFixed(0)} ms later`,
  );
}
