import { after } from "next/server";
import { generate } from "@/lib/model";
import { store } from "@/lib/stores";

export const runtime = "nodejs"; // native addons need the Node runtime

// POST { prompt }: starts a stream, answers its id at once, and keeps writing the
// model's tokens to PostgreSQL after the response; GET /api/stream/<id> reads them.
export async function POST(request: Request) {
  const { prompt } = (await request.json()) as { prompt: string };
  const id = crypto.randomUUID();
  await store.create(id);
  // Aborts when the stream is stopped, on whichever server the stop request lands:
  // pass it to the model call (with the AI SDK: `streamText({ ..., abortSignal })`).
  const signal = store.stopSignal(id);
  // Writes the tokens after the response. `after()` keeps the function running until
  // this is done on serverless hosts (Vercel), which would otherwise freeze it.
  after(async () => {
    try {
      for await (const token of generate(prompt, signal)) await store.append(id, token);
      if (!signal.aborted) await store.complete(id);
    } catch (err) {
      await store.fail(id, String(err)).catch(() => {});
    }
  });
  return Response.json({ id });
}
