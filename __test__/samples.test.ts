// Every code sample in README.md and docs/*.md works as written. The ```ts blocks
// type-check (strict) against the package's types, and each ```ts / ```js block runs as a
// program of its own (compiled by TypeScript, the package imported from this
// checkout) against a database of its own, and must exit 0 on its own: a sample that
// leaves a client open, and so the process running, fails. Blocks marked
// `<!-- frameworks/... -->` are the apps' files (readme-frameworks.test.ts), `<!-- browser -->`
// runs in an EventSource (sse-end.test.ts), and `<!-- not run: why -->` says why it cannot
// run here. Each `npx @aibind-rs/postgres` line of a ```sh block runs too, and every
// relative link points at a file and heading that exist.
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import pg from "pg";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate } from "../index.js";
import { DATABASE_URL, uid } from "./helpers.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const pages = ["README.md", ...readdirSync(`${root}docs`).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
const text = Object.fromEntries(pages.map((page) => [page, readFileSync(`${root}${page}`, "utf8")]));

interface Block {
  page: string;
  line: number;
  lang: string;
  mark: string;
  code: string;
}

/** Every fenced block, with the HTML comment on the line before it (its mark), if any. */
function blocks(page: string): Block[] {
  const found: Block[] = [];
  const lines = text[page].split("\n");
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(/^```(\w*)$/);
    if (!open) continue;
    const end = lines.indexOf("```", i + 1);
    const mark = lines[i - 1]?.match(/^<!-- (.*) -->$/)?.[1] ?? "";
    found.push({ page, line: i + 1, lang: open[1], mark, code: lines.slice(i + 1, end).join("\n") });
    i = end;
  }
  return found;
}

const all = pages.flatMap(blocks);
const programs = all.filter((b) => ["ts", "js"].includes(b.lang) && !/^(frameworks\/|browser$|not run: )/.test(b.mark));
const cliLines = all
  .filter((b) => b.lang === "sh")
  .flatMap((b) => b.code.split("\n").map((line) => ({ ...b, command: line.replace(/\s+#.*$/, "").trim() })))
  .filter((b) => b.command.startsWith("npx @aibind-rs/postgres "));

const work = `${root}node_modules/.cache/aibind-samples/`;
const packageUrl = pathToFileURL(`${root}index.js`).href;
let admin: pg.Pool;
let url: string;
const database = `samples_${uid().replace(/-/g, "_")}`;

beforeAll(async () => {
  mkdirSync(work, { recursive: true });
  // A database of its own: the samples use the default table names, as an app does.
  admin = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
  await admin.query(`CREATE DATABASE ${database}`);
  const u = new URL(DATABASE_URL);
  u.pathname = `/${database}`;
  url = u.href;
  await migrate(url);
});

afterAll(async () => {
  await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await admin.end();
});

function run(file: string, args: string[], env: Record<string, string>) {
  return new Promise<{ code: number | string; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [file, ...args], { env: { ...process.env, ...env }, timeout: 30_000, cwd: work }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.killed ? "did not exit on its own within 30 s" : (err.code ?? 1)) : 0, stdout, stderr }),
    );
  });
}

describe("the samples in README.md and docs/", () => {
  it("are found: every page's js/ts blocks, and the README is short", () => {
    expect(programs.length).toBeGreaterThan(10);
    expect(programs.some((b) => b.page === "README.md")).toBe(true);
    expect(text["README.md"].trimEnd().split("\n").length).toBeLessThanOrEqual(300);
    // A block left out of the runs says why, and there are few.
    const notRun = all.filter((b) => b.mark.startsWith("not run: "));
    expect(notRun.length).toBeLessThanOrEqual(2);
  });

  it.each(programs.map((b) => [`${b.page}:${b.line}`, b] as const))("%s runs and exits on its own", async (name, block) => {
    let js = ts.transpileModule(block.code, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    js = js.replaceAll('from "@aibind-rs/postgres"', `from ${JSON.stringify(packageUrl)}`);
    const file = `${work}${name.replace(/[^\w]/g, "_")}.mjs`;
    writeFileSync(file, js);
    const result = await run(file, [], { DATABASE_URL: url, DIRECT_URL: url });
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
  });

  it("type-check (strict), as an app's TypeScript would", () => {
    const files = programs
      .filter((b) => b.lang === "ts")
      .map((b) => {
        const file = `${work}check_${b.page.replace(/[^\w]/g, "_")}_${b.line}.ts`;
        // `export {}`: each sample is a module of its own (top-level await, own names).
        writeFileSync(file, `${b.code}\nexport {};\n`);
        return file;
      });
    const program = ts.createProgram(files, {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ["lib.es2022.d.ts", "lib.esnext.disposable.d.ts"],
      types: ["node"],
      typeRoots: [`${root}node_modules/@types`],
      skipLibCheck: true,
      paths: { "@aibind-rs/postgres": [`${root}index.d.ts`] },
    });
    const errors = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file ? `${d.file.fileName.replace(work, "")}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : "";
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
    });
    expect(errors).toEqual([]);
  });

  it.each(cliLines.map((b) => [`${b.page}:${b.line}: ${b.command}`, b] as const))("%s", async (_name, { command }) => {
    // `npx @aibind-rs/postgres` is this checkout's cli.mjs; a redirect writes into the work folder.
    const [, args, out] = command.match(/^npx @aibind-rs\/postgres (.*?)(?: > (\S+))?$/) ?? [];
    const argv = [...args.matchAll(/"([^"]*)"|(\S+)/g)].map(([, quoted, bare]) => (quoted ?? bare).replace("$DATABASE_URL", url));
    const result = await run(`${root}cli.mjs`, argv, { DATABASE_URL: url });
    if (argv[0] === "tail") {
      // A stream ends one of the documented ways; 5 (no such stream) where the samples'
      // database lacks it. A mistake in the flags would exit 2.
      expect([0, 3, 4, 5], result.stderr).toContain(result.code);
      return;
    }
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    if (out) writeFileSync(`${work}${out}`, result.stdout);
    if (argv[0] === "migrate") expect(result.stdout).toMatch(/schema ready|CREATE TABLE/);
    if (argv.includes("--json")) expect(() => JSON.parse(result.stdout)).not.toThrow();
  });
});

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to dashes. */
const anchor = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");

describe("the links in README.md and docs/", () => {
  const links = pages.flatMap((page) =>
    [...text[page].matchAll(/\]\(([^)\s]+)\)/g)]
      .map(([, target]) => target)
      .filter((target) => !/^[a-z]+:/.test(target))
      .map((target) => ({ page, target })),
  );

  it.each(links.map((l) => [`${l.page} -> ${l.target}`, l] as const))("%s exists", (_name, { page, target }) => {
    const [path, hash] = target.split("#");
    const file = path ? fileURLToPath(new URL(path, pathToFileURL(`${root}${page}`))) : `${root}${page}`;
    expect(existsSync(file), `${path} is missing`).toBe(true);
    if (hash) {
      const headings = readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => /^#+ /.test(l))
        .map((l) => anchor(l.replace(/^#+ /, "")));
      expect(headings).toContain(hash);
    }
  });
});
