// The SvelteKit and Next.js code in README.md and docs/ is the code of the apps
// test:frameworks builds and serves: each block marked `<!-- frameworks/... -->` must equal
// that file, and every route, store and model file of both apps is shown somewhere.
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const pages = ["README.md", ...readdirSync(`${root}docs`).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
const blocks = pages.flatMap((page) =>
  [...readFileSync(`${root}${page}`, "utf8").matchAll(/<!-- (frameworks\/\S+) -->\n```\w+\n([\s\S]*?)```\n/g)].map(
    ([, path, code]) => ({ page, path, code }),
  ),
);

describe("the framework examples in README.md and docs/", () => {
  it("cover every file of the SvelteKit and the Next.js app", () => {
    expect([...new Set(blocks.map((b) => b.path))].sort()).toEqual([
      "frameworks/next/app/api/stream/[id]/route.ts",
      "frameworks/next/app/api/stream/route.ts",
      "frameworks/next/instrumentation.ts",
      "frameworks/next/lib/model.ts",
      "frameworks/next/lib/stores.ts",
      "frameworks/next/next.config.mjs",
      "frameworks/sveltekit/src/lib/server/model.ts",
      "frameworks/sveltekit/src/lib/server/stores.ts",
      "frameworks/sveltekit/src/routes/api/stream/+server.ts",
      "frameworks/sveltekit/src/routes/api/stream/[id]/+server.ts",
    ]);
  });

  it.each(blocks.map((b) => [`${b.page}: ${b.path}`, b] as const))("%s is the file test:frameworks builds", (_name, { path, code }) => {
    expect(code).toBe(readFileSync(`${root}${path}`, "utf8"));
  });
});
