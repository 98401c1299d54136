import { store } from "$lib/server/stores";
import type { RequestHandler } from "./$types";

// Server-sent events: every chunk after the one the client has, then live ones until the
// stream ends, then an `end` event. `Last-Event-ID` is what EventSource sends when it
// reconnects by itself; `?after=` is for a reloaded page, whose new EventSource starts
// without it.
export const GET: RequestHandler = ({ params, request, url }) => {
  const after = Number(request.headers.get("last-event-id") ?? url.searchParams.get("after") ?? 0) || 0;
  const chunks = store.readFrom(params.id, after);
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await chunks.next();
      if (done) {
        // Say that the stream is over, with how it ended: a browser's EventSource would
        // otherwise reconnect for good. Its client stops on this event (see the README).
        const status = await store.getStatus(params.id);
        controller.enqueue(encoder.encode(`event: end\ndata: ${JSON.stringify(status ?? { state: "missing" })}\n\n`));
        return controller.close();
      }
      controller.enqueue(encoder.encode(`id: ${value.seq}\ndata: ${JSON.stringify(value.data)}\n\n`));
    },
    cancel: () => void chunks.return(undefined), // the client went away: release the reader
  });
  return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
};

// DELETE: stops the stream (a user pressed Stop): its producer's stopSignal aborts, here
// or on another server, and every reader ends after the last chunk.
export const DELETE: RequestHandler = async ({ params }) => {
  await store.stop(params.id);
  return new Response(null, { status: 204 });
};
