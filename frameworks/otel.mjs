// test:frameworks, Next.js with @vercel/otel (frameworks/next/instrumentation.ts): an OTLP
// (http/json) receiver the server exports its spans to, and the check that a streamed
// request's trace holds the store's spans under the route's span, and the Rust pool's
// round trips under those.
import { createServer } from "node:http";

/** An OTLP/HTTP JSON receiver on a free loopback port: `env` points a server at it. */
export async function otlpReceiver() {
  /** @type {any[]} */
  const spans = [];
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      try {
        for (const rs of JSON.parse(body).resourceSpans ?? [])
          for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
      } catch {
        // not JSON: counted as nothing
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const { port } = /** @type {import("node:net").AddressInfo} */ (server.address());
  return {
    spans,
    env: {
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${port}/v1/traces`,
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
      OTEL_BSP_SCHEDULE_DELAY: "200",
    },
    close: () => server.close(),
  };
}

const SERVER = 2;
const CLIENT = 3;

/**
 * Waits (up to 20 s) for a trace in which a store span (`stream.append`) sits under the
 * route's SERVER span and a CLIENT span (a round trip) under it; throws what it saw if none.
 */
export async function checkStoreSpans(what, receiver) {
  for (const deadline = Date.now() + 20_000; Date.now() < deadline;) {
    const byId = new Map(receiver.spans.map((s) => [s.spanId, s]));
    const ancestors = (s) => {
      const found = [];
      for (let p = byId.get(s.parentSpanId); p !== undefined; p = byId.get(p.parentSpanId)) found.push(p);
      return found;
    };
    const found = receiver.spans.find(
      (s) =>
        s.name === "stream.append" &&
        ancestors(s).some((a) => a.kind === SERVER && /api\/stream/.test(a.name) && a.traceId === s.traceId) &&
        receiver.spans.some((c) => c.kind === CLIENT && c.parentSpanId === s.spanId && c.name.includes("INSERT")),
    );
    if (found) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const names = [...new Set(receiver.spans.map((s) => `${s.kind}:${s.name}`))].join(", ");
  throw new Error(
    `${what}: no trace with stream.append under the route's span and a round trip under it; spans: ${names}`,
  );
}
