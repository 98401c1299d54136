// Reading server-sent events over HTTP, as a browser's EventSource would: each event with
// its `event:` type (none for a chunk), its `id:`, its decoded `data:` and when it arrived.

/** `{ status, type, events: [{ type?, id, data, at }] }` once the response ends. */
export async function readEvents(url, headers = {}) {
  const response = await fetch(url, { headers: { accept: "text/event-stream", ...headers } });
  const events = [];
  if (!response.ok)
    return { status: response.status, type: response.headers.get("content-type"), events, body: await response.text() };
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const bytes of /** @type {import("node:stream/web").ReadableStream<Uint8Array>} */ (response.body)) {
    buffer += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { at: performance.now() };
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        const field = line.slice(0, colon);
        const value = line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.type = value;
        else if (field === "id") event.id = Number(value);
        else if (field === "data") event.data = JSON.parse(value);
      }
      events.push(event);
    }
  }
  if (buffer.trim() !== "") throw new Error(`an unterminated event: ${JSON.stringify(buffer)}`);
  return { status: response.status, type: response.headers.get("content-type"), events };
}
