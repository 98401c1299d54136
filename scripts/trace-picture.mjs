// Draws docs/trace.svg: a real trace of a chat request, as an OpenTelemetry SDK records
// it (the in-memory exporter of @opentelemetry/sdk-trace-base): the route's span, the
// store's INTERNAL spans under it and the Rust pool's CLIENT spans under those, a reader's
// pages, and combined appends linked to the calls they served.
//
//   DATABASE_URL=postgres://... node scripts/trace-picture.mjs   (or under with-postgres.mjs)
import { writeFileSync } from "node:fs";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";

const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is not set");
const exporter = new InMemorySpanExporter();
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));

const { PostgresStreamStore, migrate } = await import("../index.js");
await migrate(url);
const store = new PostgresStreamStore(url, { poolSize: 2 });
const id = `picture-${Date.now()}`;
await trace.getTracer("app").startActiveSpan("POST /api/chat", async (route) => {
  await store.create(id);
  const reading = (async () => {
    const chunks = [];
    for await (const c of store.readFrom(id, 0)) chunks.push(c);
    return chunks;
  })();
  // A model's tokens, a few at once (the pool combines those that queue).
  for (let i = 0; i < 3; i++) {
    await Promise.all(["Hel", "lo, ", "wor", "ld"].map((t) => store.append(id, `${t}${i}`)));
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
  await store.complete(id);
  await reading;
  route.end();
});
await new Promise((resolve) => setTimeout(resolve, 300));
await store.close();

const spans = exporter.getFinishedSpans();
const ms = (t) => t[0] * 1e3 + t[1] / 1e6;
const t0 = Math.min(...spans.map((s) => ms(s.startTime)));
const t1 = Math.max(...spans.map((s) => ms(s.endTime)));
const byParent = new Map();
for (const s of spans) {
  const p = s.parentSpanContext?.spanId ?? "";
  if (!byParent.has(p)) byParent.set(p, []);
  byParent.get(p).push(s);
}
/** Depth-first, children by start time. */
const rows = [];
const visit = (s, depth) => {
  rows.push({ s, depth });
  const children = (byParent.get(s.spanContext().spanId) ?? []).sort((a, b) => ms(a.startTime) - ms(b.startTime));
  for (const c of children) visit(c, depth + 1);
};
for (const root of spans.filter((s) => !s.parentSpanContext)) visit(root, 0);

const W = 980;
const LABEL = 360;
const H = 18;
const x = (t) => LABEL + ((t - t0) / (t1 - t0)) * (W - LABEL - 20);
const colour = { 0: "#6b7280", 1: "#2563eb", 2: "#16a34a" };
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");
const lines = rows.map(({ s, depth }, i) => {
  const y = 30 + i * H;
  const kind = s.kind === 2 ? 2 : depth === 0 ? 0 : 1;
  const batch = s.attributes["db.operation.batch.size"];
  const name = `${s.name.replace(/ aibind_/g, " ")}${batch ? ` (batch of ${batch})` : ""}`;
  const left = x(ms(s.startTime));
  const width = Math.max(2, x(ms(s.endTime)) - left);
  const dur = (ms(s.endTime) - ms(s.startTime)).toFixed(1);
  const events = s.events.map((e) => `<circle cx="${x(ms(e.time))}" cy="${y - 4}" r="3" fill="#f59e0b"/>`).join("");
  return (
    `<text x="${8 + depth * 14}" y="${y}" font-size="11">${esc(name)}</text>` +
    `<rect x="${left}" y="${y - 10}" width="${width}" height="12" fill="${colour[kind]}" rx="2"/>` +
    `<text x="${Math.min(left + width + 4, W - 40)}" y="${y}" font-size="9" fill="#374151">${dur} ms</text>${events}`
  );
});
const height = 40 + rows.length * H;
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" font-family="ui-monospace, monospace">
<rect width="100%" height="100%" fill="white"/>
<text x="8" y="14" font-size="11" fill="#374151">a chat request's trace (${(t1 - t0).toFixed(0)} ms): route (grey), store operations (INTERNAL, blue), the Rust pool's round trips (CLIENT, green), a reader's wake-up (orange dot)</text>
${lines.join("\n")}
</svg>
`;
writeFileSync(new URL("../docs/trace.svg", import.meta.url), svg);
console.log(`docs/trace.svg: ${rows.length} spans`);
