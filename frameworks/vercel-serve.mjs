#!/usr/bin/env node
// `node vercel-serve.mjs FUNC_DIR`: serves a Vercel Build Output function folder
// (`.vercel/output/functions/*.func`, as SvelteKit's adapter-vercel writes it) over HTTP
// on PORT/HOST, the way Vercel's Node.js runtime calls it: its handler's default export
// `fetch(request)` per request. Modules resolve from inside FUNC_DIR only, so the test
// that runs it shows the folder is complete on its own (frameworks/test.mjs copies it out
// of the project first).
import { readFileSync } from "node:fs";
import http from "node:http";
import { join } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";

const dir = process.argv[2];
if (!dir) throw new Error("usage: node vercel-serve.mjs FUNC_DIR");
const config = JSON.parse(readFileSync(join(dir, ".vc-config.json"), "utf8"));
const { default: fn } = await import(pathToFileURL(join(dir, config.handler)).href);
const HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade"]);

http
  .createServer(async (req, res) => {
    try {
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (!HOP.has(name) && value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
      }
      const hasBody = req.method !== "GET" && req.method !== "HEAD";
      const request = new Request(`http://${req.headers.host}${req.url}`, {
        method: req.method,
        headers,
        body: hasBody ? /** @type {any} */ (req) : undefined,
        // @ts-expect-error undici's option for a streamed request body
        duplex: "half",
      });
      const response = await fn.fetch(request);
      res.writeHead(response.status, Object.fromEntries(response.headers));
      if (!response.body) return void res.end();
      const reader = response.body.getReader();
      res.on("close", () => void reader.cancel().catch(() => {}));
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        res.write(value);
      }
      res.end();
    } catch (err) {
      console.error(err);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  })
  .listen(Number(process.env.PORT), process.env.HOST ?? "127.0.0.1");
