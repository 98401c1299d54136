// Stands in for an LLM: the prompt's words, one token every MODEL_DELAY_MS (20 ms).
export async function* generate(prompt: string): AsyncGenerator<string> {
  const delay = Number(process.env.MODEL_DELAY_MS ?? 20);
  const words = prompt.split(/\s+/).filter(Boolean);
  for (const [i, word] of words.entries()) {
    await new Promise((resolve) => setTimeout(resolve, delay));
    yield i === 0 ? word : ` ${word}`;
  }
}
