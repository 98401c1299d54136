// `npm run demo:web`: a resumable AI chat in the browser, backed by @aibind-rs/postgres.
// A small Node HTTP server (no framework) serves one page: type a prompt and a simulated
// LLM answer streams in over server-sent events. Reload mid-stream and it resumes where
// it left off (the page asks from its last seq; a dropped connection sends Last-Event-ID);
// open the same link in a second tab and it joins live; Stop stops the stream for every
// tab. Uses DATABASE_URL, or the throwaway PostgreSQL `npm run demo:web` starts.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import process from "node:process";
import { setTimeout as sleep } from "node:timers/promises";
import { PostgresStreamStore, migrate } from "../../index.js";
import { answerFor } from "./model.mjs";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is not set: run `npm run demo:web`");
const page = readFileSync(new URL("./index.html", import.meta.url));

await migrate(url); // the stores never create tables; this is the app's migration
const store = new PostgresStreamStore(url);

const TOKEN_MS = Number(process.env.TOKEN_MS ?? 80);

async function generate(id, prompt) {
  // Aborts the moment the stream is stopped, by this server or any other: a model call
  // given it (`streamText({ abortSignal })`) stops, and its bill with it.
  const signal = store.stopSignal(id);
  for (const token of answerFor(prompt)) {
    // Waits one token's time, or less if the stream is stopped; the timer removes its
    // listener from the signal when it fires, so the signal does not collect one per token.
    await sleep(TOKEN_MS, undefined, { signal }).catch(() => {});
    if (signal.aborted) return; // stopped by a user
    try {
      await store.append(id, token);
    } catch (err) {
      if (err.code === "STREAM_NOT_ACTIVE") return; // stopped by a user
      await store.fail(id, err.message).catch(() => {});
      return;
    }
  }
  await store.complete(id);
}

function json(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readBody(req) {
  let body = "";
  for await (const part of req) body += part;
  return body ? JSON.parse(body) : {};
}

const server = createServer(async (req, res) => {
  const { pathname, searchParams } = new URL(req.url ?? "/", "http://localhost");
  try {
    if (req.method === "GET" && pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end(page);
    }
    if (req.method === "POST" && pathname === "/api/chat") {
      const { prompt } = await readBody(req);
      if (typeof prompt !== "string" || !prompt.trim())
        return json(res, 400, { error: "prompt must be a non-empty string" });
      const id = randomUUID();
      await store.create(id);
      generate(id, prompt.trim()); // outlives this request
      return json(res, 200, { id });
    }
    const stop = pathname.match(/^\/api\/stream\/([\w-]+)\/stop$/);
    if (req.method === "POST" && stop) {
      await store.stop(stop[1]);
      return json(res, 200, await store.getStatus(stop[1]));
    }
    const stream = pathname.match(/^\/api\/stream\/([\w-]+)$/);
    if (req.method === "GET" && stream) {
      // Resume after the last seq the browser has: Last-Event-ID when EventSource
      // reconnects by itself, ?after= when the page was reloaded.
      const after = Number(req.headers["last-event-id"] ?? searchParams.get("after") ?? 0) || 0;
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      const chunks = store.readFrom(stream[1], after);
      req.on("close", () => chunks.return()); // the tab went away: release the reader
      for await (const { seq, data } of chunks) res.write(`id: ${seq}\ndata: ${JSON.stringify(data)}\n\n`);
      const status = await store.getStatus(stream[1]);
      res.write(`event: end\ndata: ${JSON.stringify(status ?? { state: "missing" })}\n\n`);
      return res.end();
    }
    json(res, 404, { error: "not found" });
  } catch (err) {
    if (!res.headersSent) json(res, 500, { error: err.message, code: err.code });
    else res.end();
  }
});

const port = Number(process.env.PORT ?? 3000);
server.listen(port, "127.0.0.1", () => {
  const { port: bound } = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`demo:web listening on http://127.0.0.1:${bound}/`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    server.close();
    await store.close();
    process.exit(0);
  });
}
