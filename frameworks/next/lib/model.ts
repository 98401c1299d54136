// Stands in for an LLM: the prompt's words, one token every MODEL_DELAY_MS (20 ms).
// Like a model call given `abortSignal`, it stops at once when the signal aborts.
import { setTimeout as sleep } from "node:timers/promises";

export async function* generate(prompt: string, signal?: AbortSignal): AsyncGenerator<string> {
  const delay = Number(process.env.MODEL_DELAY_MS ?? 20);
  const words = prompt.split(/\s+/).filter(Boolean);
  for (const [i, word] of words.entries()) {
    // The timer takes its listener off the signal when it fires: no listener piles up per token.
    await sleep(delay, undefined, { signal }).catch(() => {});
    if (signal?.aborted) return;
    yield i === 0 ? word : ` ${word}`;
  }
}
