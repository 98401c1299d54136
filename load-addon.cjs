// Loads the native addon for index.cjs, which calls the exported function once.
//
// Installed (this file on disk as itself): binding.cjs is required by the path
// `require.resolve("./binding.cjs")` gives, through a `createRequire(__filename)`. File
// tracers (@vercel/nft: Next's `output: "standalone"` with webpack, Vercel, SvelteKit's
// adapter-vercel, Nitro; and Turbopack's own tracer) follow `require.resolve` with a
// literal, and binding.cjs's literal per-platform requires lead them on to the `.node`
// file or the platform package. Bundlers that inline this file (Rollup in SvelteKit's
// adapter-node, esbuild) leave `require.resolve` alone, so they neither pull the `.node`
// file into a bundle nor fail the build on it.
//
// Bundled (this file's code inlined into a server chunk): the addon is loaded from the
// package installed in node_modules where the program runs, if it is there; if not, the
// error is BUNDLED and names the fix. Every failure is a PostgresStoreError with a stable
// code (lib/load-errors.cjs).
"use strict";

const { createRequire } = require("node:module");
const path = require("node:path");
const { bindingError, bundledError } = require("./lib/load-errors.cjs");

module.exports = loadBinding;

const PACKAGE = "@aibind-rs/postgres";

function loadBinding() {
  if (typeof __filename === "string" && /[\\/]load-addon\.cjs$/.test(__filename)) {
    const requireHere = createRequire(__filename);
    try {
      return requireHere(require.resolve("./binding.cjs"));
    } catch (cause) {
      throw bindingError(cause, __dirname);
    }
  }
  return loadInstalled();
}

/**
 * The addon of the package installed where this program runs: found from the program's
 * entry file (`node build`, `node server.js`) or the working directory. A bundled copy's
 * JavaScript works with the installed package's addon as with its own.
 */
function loadInstalled() {
  const anchors = [];
  if (typeof process === "object" && process !== null) {
    if (typeof process.argv?.[1] === "string") anchors.push(path.resolve(process.argv[1]));
    try {
      anchors.push(path.join(process.cwd(), "index.js"));
    } catch {}
  }
  let dir = null;
  for (const anchor of anchors) {
    try {
      dir = path.dirname(createRequire(anchor).resolve(`${PACKAGE}/package.json`));
      break;
    } catch {}
  }
  if (dir === null) {
    throw bundledError(
      `this copy is not in node_modules and ${PACKAGE} is not installed where the program runs ` +
        `(looked from ${anchors.join(" and ") || "nowhere: no entry file or working directory"})`,
    );
  }
  // A computed path: bundlers leave it alone, and it runs only in a bundled copy.
  const requireThere = createRequire(path.join(dir, "load-addon.cjs"));
  const binding = path.join(dir, "binding.cjs");
  try {
    return requireThere(binding);
  } catch (cause) {
    throw bindingError(cause, dir);
  }
}
