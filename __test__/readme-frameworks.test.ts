// The README's SvelteKit and Next.js code is the code of the apps test:frameworks builds
// and serves: each block marked `<!-- frameworks/... -->` must equal that file.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const readme = readFileSync(`${root}README.md`, "utf8");
const blocks = [...readme.matchAll(/<!-- (frameworks\/\S+) -->\n```\w+\n([\s\S]*?)```\n/g)].map(([, path, code]) => ({ path, code }));

describe("the README's framework examples", () => {
  it("cover the SvelteKit and the Next.js app", () => {
    expect(blocks.map((b) => b.path).sort()).toEqual([
      "frameworks/next/app/api/stream/[id]/route.ts",
      "frameworks/next/app/api/stream/route.ts",
      "frameworks/next/lib/stores.ts",
      "frameworks/next/next.config.mjs",
      "frameworks/sveltekit/src/lib/server/stores.ts",
      "frameworks/sveltekit/src/routes/api/stream/+server.ts",
      "frameworks/sveltekit/src/routes/api/stream/[id]/+server.ts",
    ]);
  });

  it.each(blocks)("$path is the file test:frameworks builds", ({ path, code }) => {
    expect(code).toBe(readFileSync(`${root}${path}`, "utf8"));
  });
});
