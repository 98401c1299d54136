// The SSE routes of the SvelteKit and Next.js apps end each response with an `end` event,
// and the README's browser lines stop on it: a real EventSource (Node's, which follows the
// browser's spec) connects once and does not reconnect to a stream that is over. The
// routes are the apps' own files, served here through a plain Node HTTP server.
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStreamStore, migrate } from "../index.js";
import { DATABASE_URL, uid } from "./helpers.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const readme = readFileSync(`${root}README.md`, "utf8");
/** The README's browser lines: the block after `<!-- browser -->`. */
const browserLines = readme.match(/<!-- browser -->\n```js\n([\s\S]*?)```\n/)?.[1] ?? "";

type Handler = (request: Request, params: { id: string }) => Promise<Response> | Response;

// The apps' files, compiled as they are into modules Node loads by itself (under
// node_modules, which vitest leaves to Node), their imports pointed where each framework
// would resolve them: `$lib/...`, `@/lib/...`, `$env/dynamic/private`, the package.
const compiled = `${root}node_modules/.cache/aibind-sse-test/`;
mkdirSync(compiled, { recursive: true });
writeFileSync(`${compiled}env.mjs`, "export const env = process.env;\n");
const packageUrl = pathToFileURL(`${root}index.js`).href;

function compile(path: string, imports: Record<string, string>) {
  let js = ts.transpileModule(readFileSync(`${root}${path}`, "utf8"), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  for (const [from, to] of Object.entries(imports)) js = js.replaceAll(`from "${from}"`, `from "${to}"`);
  const out = `${compiled}${path.replace(/[^\w.]/g, "_")}.mjs`;
  writeFileSync(out, js);
  return pathToFileURL(out).href;
}

const sveltekitStores = compile("frameworks/sveltekit/src/lib/server/stores.ts", {
  "@aibind-rs/postgres": packageUrl,
  "$env/dynamic/private": pathToFileURL(`${compiled}env.mjs`).href,
});
const nextStores = compile("frameworks/next/lib/stores.ts", { "@aibind-rs/postgres": packageUrl });

/** The apps' GET handlers, each called as its framework calls it. */
async function routes(): Promise<Array<[string, Handler]>> {
  const load = (url: string) => import(url) as Promise<{ GET: (...args: never[]) => Promise<Response> | Response }>;
  const svelte = await load(compile("frameworks/sveltekit/src/routes/api/stream/[id]/+server.ts", { "$lib/server/stores": sveltekitStores }));
  const next = await load(compile("frameworks/next/app/api/stream/[id]/route.ts", { "@/lib/stores": nextStores }));
  const sveltekitGet = svelte.GET as unknown as (event: { params: { id: string }; request: Request; url: URL }) => Promise<Response>;
  const nextGet = next.GET as unknown as (request: Request, context: { params: Promise<{ id: string }> }) => Promise<Response>;
  return [
    ["SvelteKit", (request, params) => sveltekitGet({ params, request, url: new URL(request.url) })],
    ["Next.js", (request, params) => nextGet(request, { params: Promise.resolve(params) })],
  ];
}

/** Serves `handler` at /api/stream/<id>, counting the requests per stream id. */
async function serve(handler: Handler) {
  const connections = new Map<string, number>();
  const server: Server = createServer(async (req, res) => {
    const id = decodeURIComponent((req.url ?? "").split("?")[0].replace("/api/stream/", ""));
    connections.set(id, (connections.get(id) ?? 0) + 1);
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
    const controller = new AbortController();
    req.on("close", () => controller.abort());
    const response = await handler(new Request(`http://localhost${req.url}`, { headers, signal: controller.signal }), { id });
    res.writeHead(response.status, Object.fromEntries(response.headers));
    // A reconnection delay of 50 ms instead of EventSource's 3 s, so that a client that
    // would reconnect does so many times within the test's wait.
    res.write("retry: 50\n\n");
    if (!response.body) return res.end();
    try {
      for await (const bytes of response.body as unknown as AsyncIterable<Uint8Array>) res.write(bytes);
    } finally {
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, connections, close: () => new Promise((resolve) => server.close(resolve)) };
}

/**
 * Runs `lines` in a Node process with a real EventSource, as a page at `base` would;
 * `show` collects the chunks. Reports what was shown and whether the page closed its
 * EventSource, 600 ms after it did (or after `giveUpMs`, if it never does).
 */
function browser(base: string, id: string, lines: string, giveUpMs = 20_000): Promise<{ shown: string[]; lastSeq: number; closed: boolean }> {
  const page = `
    const base = ${JSON.stringify(base)};
    const id = ${JSON.stringify(id)};
    let lastSeq = 0;
    const shown = [];
    const show = (text) => shown.push(text);
    let closed = false;
    const report = () => { console.log(JSON.stringify({ shown, lastSeq, closed })); process.exit(0); };
    // The page's origin is base: relative URLs resolve against it, as in a browser.
    const EventSource = class extends globalThis.EventSource {
      constructor(url, init) { super(new URL(url, base), init); }
      close() { closed = true; super.close(); setTimeout(report, 600); }
    };
    setTimeout(report, ${giveUpMs});
    ${lines}
  `;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ["--experimental-eventsource", "--no-warnings", "--input-type=module", "-e", page], (err, stdout) =>
      err ? reject(err) : resolve(JSON.parse(stdout)),
    );
  });
}

let store: PostgresStreamStore;
let admin: pg.Pool;
const database = `sse_${uid().replace(/-/g, "_")}`;

beforeAll(async () => {
  // A database of its own: the apps' stores use the default table names.
  admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
  await admin.query(`CREATE DATABASE ${database}`);
  const url = new URL(DATABASE_URL);
  url.pathname = `/${database}`;
  process.env.DATABASE_URL = url.href; // what the apps' stores read when their module loads
  await migrate(url.href);
  store = new PostgresStreamStore(url.href);
});

afterAll(async () => {
  await store?.close();
  for (const url of [sveltekitStores, nextStores]) {
    const { store: appStore } = (await import(url)) as { store: PostgresStreamStore };
    await appStore.close();
  }
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin.end();
});

async function finishedStream(chunks: string[]) {
  const id = uid("sse");
  await store.create(id);
  for (const chunk of chunks) await store.append(id, chunk);
  await store.complete(id);
  return id;
}

describe("the SSE routes and the README's browser lines", () => {
  it("the README has the browser lines, they stop on `end`, and docs/ shows the same lines", () => {
    expect(browserLines).toContain("new EventSource(");
    expect(browserLines).toMatch(/addEventListener\("end"/);
    const docs = readdirSync(`${root}docs`).filter((f) => f.endsWith(".md"));
    const copies = docs.flatMap((f) => [...readFileSync(`${root}docs/${f}`, "utf8").matchAll(/<!-- browser -->\n```js\n([\s\S]*?)```\n/g)].map((m) => m[1]));
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) expect(copy).toBe(browserLines);
  });

  it.each([["SvelteKit"], ["Next.js"]])("%s: the page shows every chunk, closes on `end`, and never reconnects", async (name) => {
    const handler = new Map(await routes()).get(name) as Handler;
    const server = await serve(handler);
    try {
      // A finished stream (a reload after the answer), and a live one that ends while read.
      const done = await finishedStream(["Hello", ", ", "world"]);
      expect(await browser(server.base, done, browserLines)).toEqual({ shown: ["Hello", ", ", "world"], lastSeq: 3, closed: true });
      expect(server.connections.get(done)).toBe(1);

      const live = uid("sse");
      await store.create(live);
      const reading = browser(server.base, live, browserLines);
      await new Promise((resolve) => setTimeout(resolve, 300));
      for (const chunk of ["a", "b"]) await store.append(live, chunk);
      await store.stop(live);
      expect(await reading).toEqual({ shown: ["a", "b"], lastSeq: 2, closed: true });
      expect(server.connections.get(live)).toBe(1);
    } finally {
      await server.close();
    }
  });

  it("without the `end` listener, EventSource reconnects to a finished stream (what the lines prevent)", async () => {
    const [, handler] = (await routes())[0];
    const server = await serve(handler);
    try {
      const id = await finishedStream(["x"]);
      const withoutEnd = browserLines.replace(/^.*addEventListener\("end".*$/m, "");
      const result = await browser(server.base, id, withoutEnd, 3_000);
      expect(result.closed).toBe(false);
      expect(server.connections.get(id)).toBeGreaterThan(2);
    } finally {
      await server.close();
    }
  });
});
