#!/usr/bin/env node
// The module graph of src/: which file uses which, from `use crate::...`, `use super::...`,
// `use self::...`, uses of child modules and paths written inline (`crate::x::f()`).
// `mod` lines only place files in the tree (a parent declaring a child is not a use).
// Unit tests (a `#[cfg(test)] mod tests` block, or a tests.rs file) are left out.
// Prints one line per edge (`from -> to`), then exits 1 if the graph has a cycle,
// naming it.
//
//   node scripts/module-graph.mjs [--mermaid]
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(fileURLToPath(new URL(".", import.meta.url)), "..", "src");

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return name.endsWith(".rs") ? [path] : [];
  });
}

// Module path (['backend', 'pool']) of a file.
function modulePath(file) {
  const parts = relative(root, file).replace(/\.rs$/, "").split("/");
  const last = parts[parts.length - 1];
  if (last === "lib" && parts.length === 1) return [];
  if (last === "mod") parts.pop();
  return parts;
}

const modules = new Map(); // 'backend::pool' -> file
for (const file of files(root)) {
  if (/(^|\/)tests(\.rs$|\/)/.test(relative(root, file))) continue;
  modules.set(modulePath(file).join("::"), file);
}

// The code of a file without comments, string and char literals, and its test module.
function code(text) {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    const rest = text.slice(i, i + 3);
    if (rest.startsWith("//")) {
      i = text.indexOf("\n", i);
      if (i < 0) break;
    } else if (rest.startsWith("/*")) {
      i = text.indexOf("*/", i) + 2;
    } else if (/^b?r#*"/.test(text.slice(i, i + 8)) && !/\w/.test(text[i - 1] ?? "")) {
      const m = /** @type {RegExpExecArray} */ (/^b?r(#*)"/.exec(text.slice(i, i + 8)));
      const end = text.indexOf('"' + m[1], i + m[0].length);
      out += '""';
      i = end + 1 + m[1].length;
    } else if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      out += '""';
      i++;
    } else if (c === "'" && /^'(?:\\.[^']*|[^\\'])'/.test(text.slice(i, i + 12))) {
      i += /** @type {RegExpExecArray} */ (/^'(?:\\.[^']*|[^\\'])'/.exec(text.slice(i, i + 12)))[0].length;
      out += "' '";
    } else {
      out += c;
      i++;
    }
  }
  const test = out.search(/#\[cfg\(test\)\]\s*mod\s+\w+\s*\{/);
  if (test >= 0) {
    // Cut the block: from its `{` to the matching `}`.
    let depth = 0;
    let i = out.indexOf("{", test);
    const start = test;
    for (; i < out.length; i++) {
      if (out[i] === "{") depth++;
      else if (out[i] === "}" && --depth === 0) break;
    }
    out = out.slice(0, start) + out.slice(i + 1);
  }
  return out;
}

// Expands a use tree (`a::{b, c::{d, e}}`) into paths.
function expand(tree) {
  tree = tree.replace(/\s+/g, "");
  const open = tree.indexOf("{");
  if (open < 0) return [tree.replace(/\bas\w+$/, "")];
  const prefix = tree.slice(0, open);
  const inner = tree.slice(open + 1, tree.lastIndexOf("}"));
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    if (inner[i] === "{") depth++;
    else if (inner[i] === "}") depth--;
    else if (inner[i] === "," && depth === 0) {
      parts.push(inner.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(inner.slice(start));
  return parts.filter(Boolean).flatMap((part) => expand(part).map((p) => prefix + p));
}

// The module a path names (its longest prefix that is a module), from module `here`.
function resolve(path, here, children) {
  const segments = path.split("::").filter(Boolean);
  let base;
  if (segments[0] === "crate") base = [];
  else if (segments[0] === "self") base = [...here];
  else if (segments[0] === "super") {
    base = [...here];
    while (segments[0] === "super") {
      base.pop();
      segments.shift();
    }
    segments.unshift("super");
  } else if (children.has(segments[0])) {
    base = [...here];
    segments.unshift("self");
  } else return null;
  segments.shift();
  let found = null;
  for (let n = 0; n <= segments.length; n++) {
    const key = [...base, ...segments.slice(0, n)].join("::");
    if (modules.has(key)) found = key;
  }
  return found;
}

const edges = new Map(); // from -> Set(to)
for (const [name, file] of modules) {
  const here = name ? name.split("::") : [];
  const text = code(readFileSync(file, "utf8"));
  const children = new Set([...text.matchAll(/^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;/gm)].map((m) => m[1]));
  const paths = [];
  for (const m of text.matchAll(/\buse\s+([^;]+);/g)) paths.push(...expand(m[1]));
  for (const m of text.matchAll(/(?<![\w:])((?:crate|super|self|[a-z_][a-z0-9_]*)(?:::[A-Za-z_][A-Za-z0-9_]*)+)/g)) {
    paths.push(m[1]);
  }
  const to = new Set();
  for (const path of paths) {
    const target = resolve(path, here, children);
    if (target !== null && target !== name) to.add(target);
  }
  edges.set(name, to);
}

const label = (name) => (name === "" ? "lib" : name);
const mermaid = process.argv.includes("--mermaid");
if (mermaid) console.log("```mermaid\nflowchart LR");
for (const [from, to] of [...edges].sort()) {
  for (const target of [...to].sort()) {
    if (mermaid) console.log(`  ${label(from).replaceAll("::", "_")} --> ${label(target).replaceAll("::", "_")}`);
    else console.log(`${label(from)} -> ${label(target)}`);
  }
}
if (mermaid) console.log("```");

// Cycles: a depth-first search that reports the first back edge's loop.
const state = new Map();
const stack = [];
/** @type {{ cycle: string[] | null }} */
const found = { cycle: null };
function visit(node) {
  state.set(node, "open");
  stack.push(node);
  for (const next of edges.get(node) ?? []) {
    if (found.cycle) return;
    if (state.get(next) === "open") {
      found.cycle = [...stack.slice(stack.indexOf(next)), next];
      return;
    }
    if (!state.has(next)) visit(next);
  }
  stack.pop();
  state.set(node, "done");
}
for (const node of [...edges.keys()].sort()) {
  if (!state.has(node) && !found.cycle) visit(node);
}
if (found.cycle) {
  console.error(`module cycle: ${found.cycle.map(label).join(" -> ")}`);
  process.exit(1);
}
