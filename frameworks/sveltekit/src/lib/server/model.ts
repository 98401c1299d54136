// Stands in for an LLM: the prompt's words, one token every `MODEL_DELAY_MS` (20 ms).
// Like a model call given `abortSignal`, it stops at once when the signal aborts.
import { env } from "$env/dynamic/private";

export async function* generate(prompt: string, signal?: AbortSignal): AsyncGenerator<string> {
  const delay = Number(env.MODEL_DELAY_MS ?? 20);
  const words = prompt.split(/\s+/).filter(Boolean);
  for (const [i, word] of words.entries()) {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, delay);
      signal?.addEventListener("abort", () => resolve(clearTimeout(timer)), { once: true });
    });
    if (signal?.aborted) return;
    yield i === 0 ? word : ` ${word}`;
  }
}
