import { generate } from "@/lib/model";
import { store } from "@/lib/stores";

export const runtime = "nodejs"; // native addons need the Node runtime

// POST { prompt }: starts a stream, answers its id at once, and keeps writing the
// model's tokens to PostgreSQL after the response; GET /api/stream/<id> reads them.
export async function POST(request: Request) {
  const { prompt } = (await request.json()) as { prompt: string };
  const id = crypto.randomUUID();
  await store.create(id);
  void (async () => {
    try {
      for await (const token of generate(prompt)) await store.append(id, token);
      await store.complete(id);
    } catch (err) {
      await store.fail(id, String(err)).catch(() => {});
    }
  })();
  return Response.json({ id });
}
