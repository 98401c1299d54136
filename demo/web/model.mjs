// The demo's simulated LLM: a deterministic answer for a prompt, as the tokens it streams.
export function answerFor(prompt) {
  return `You asked: "${prompt}". Here is a streamed answer, written token by token into PostgreSQL by the server and read back by every tab that watches it. Reload this page and it picks up exactly where it left off; open a second tab and it joins live; press Stop and every tab sees the stream stop. Durable streams outlive the request that started them.`.split(
    /(?<= )/,
  );
}
