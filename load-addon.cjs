// Loads the native addon for index.cjs, which calls the exported function once. Kept
// out of bundles: binding.cjs (and through it the `.node` file) is required with a
// require that bundlers do not follow, and a bundled copy of this file throws BUNDLED,
// naming how to leave the package to Node, instead of failing the build on the `.node`
// file. Errors are plain Errors with a `code` (this runs before index.cjs's own helpers).
"use strict";

const { PostgresStoreError } = require("./lib/errors.cjs");
const { currentPlatform, supportedPlatforms } = require("./lib/platform.cjs");

module.exports = loadBinding;

/**
 * The native addon: from this package's folder when built from source, else from the
 * platform package npm installed (`@aibind-rs/postgres-<platform>`). It is required
 * through `nodeRequire()`, which bundlers do not follow: a bundled copy of this file
 * neither drags the `.node` file into a bundle nor fails the build on it, and instead
 * says here how to leave the package to Node. Each failure has a code:
 * BUNDLED, UNSUPPORTED_PLATFORM, MISSING_PLATFORM_PACKAGE, NATIVE_LOAD_FAILED.
 */
function loadBinding() {
  const load = nodeRequire();
  if (load === null) throw bundledError("load-addon.cjs is not running from its own file");
  try {
    return load("./binding.cjs");
  } catch (cause) {
    throw bindingError(cause, load);
  }
}

/**
 * A require anchored at this file, made with `createRequire` (or this module's own
 * `module.require` on a Node without `process.getBuiltinModule`): nothing a bundler
 * follows. Null when this file is not itself on disk (bundled into a chunk, or turned
 * into ESM).
 */
function nodeRequire() {
  try {
    if (typeof __filename !== "string" || !/[\\/]load-addon\.cjs$/.test(__filename)) return null;
    const builtin =
      typeof process.getBuiltinModule === "function" ? process.getBuiltinModule("node:module") : undefined;
    if (builtin) return builtin.createRequire(__filename);
    /** @type {(mod: any, id: string) => any} */
    const requireFrom = (mod, id) => mod.require(id);
    return typeof module === "object" && typeof (/** @type {any} */ (module)?.require) === "function"
      ? (id) => requireFrom(module, id)
      : null;
  } catch {
    return null;
  }
}

function loadError(code, message, cause) {
  return new PostgresStoreError(code, message, { cause });
}

function bundledError(detail, cause) {
  return loadError(
    "BUNDLED",
    `@aibind-rs/postgres was bundled or transformed by a build tool (${detail}), so it cannot load its ` +
      "native addon: Node must load the package from node_modules. Leave it unbundled: " +
      `Next.js: \`serverExternalPackages: ["@aibind-rs/postgres"]\` in next.config; ` +
      `Vite (SvelteKit, Nuxt, ...): \`ssr: { external: ["@aibind-rs/postgres"] }\` in the Vite config; ` +
      `SvelteKit's adapter-node bundles devDependencies: install it into "dependencies" ` +
      `(\`npm install @aibind-rs/postgres\`, not -D). Edge runtimes cannot load native addons: use the Node.js runtime.`,
    cause,
  );
}

/** Every message of an error and its chain of causes. */
function messages(err) {
  const out = [];
  for (let e = err, n = 0; e != null && n < 50; e = e.cause, n++) out.push(String(e?.message ?? e));
  return out;
}

/**
 * The error for a binding.cjs that failed to load, by what failed.
 * @param {unknown} cause what binding.cjs threw
 * @param {(id: string) => any} load the require that loaded it, for package.json
 */
function bindingError(cause, load) {
  const here = currentPlatform();
  // The platforms with a prebuilt binary: package.json's napi.targets (null if unreadable).
  let supported = null;
  try {
    supported = supportedPlatforms(load("./package.json"));
  } catch {}
  const fromSource =
    (supported === null ? "" : ` Prebuilt binaries exist for: ${supported.join(", ")}.`) +
    " To build it from source instead (the package ships its Rust source): install Rust " +
    `(https://rustup.rs), then in node_modules/@aibind-rs/postgres run ` +
    "`npx @napi-rs/cli@3 build --platform --release --js binding.cjs --dts binding.d.ts`.";
  const all = messages(cause);
  // binding.cjs always ships next to this file: not found, this is not the package's folder.
  if (all.length === 1 && /^Cannot find module '\.\/binding\.cjs'/.test(all[0])) {
    return bundledError("./binding.cjs is not next to this file", cause);
  }
  const tried = all.slice(1).map((m) => m.split("\n")[0]); // what binding.cjs tried, in turn
  const causeText = ` Cause: ${tried.length > 0 ? tried.join("; ") : all[0]}`;
  // A `.node` file read as JavaScript: a bundler or a module runner handled binding.cjs.
  const parsed = all.find((m) =>
    /Unexpected character|Invalid or unexpected token|Module parse failed|Could not dynamically require/.test(m),
  );
  if (parsed) return bundledError(parsed.split("\n")[0], cause);
  if (supported !== null && !supported.includes(here)) {
    return loadError(
      "UNSUPPORTED_PLATFORM",
      `@aibind-rs/postgres has no prebuilt binary for ${here}.${fromSource}${causeText}`,
      cause,
    );
  }
  // binding.cjs tried this folder's addon, then the platform package: both not found.
  if (tried.length > 0 && tried.every((m) => /^Cannot find module /.test(m))) {
    return loadError(
      "MISSING_PLATFORM_PACKAGE",
      `@aibind-rs/postgres could not load its native addon for ${here}: the optional dependency ` +
        `@aibind-rs/postgres-${here} is not installed (installed with --omit=optional, or the lockfile was ` +
        `made on another platform). Reinstall with \`npm install\` on this machine.${fromSource}${causeText}`,
      cause,
    );
  }
  const reason = tried.find((m) => !/^Cannot find module /.test(m)) ?? all[0].split("\n")[0];
  return loadError(
    "NATIVE_LOAD_FAILED",
    `@aibind-rs/postgres could not load its native addon for ${here}: ${reason}`,
    cause,
  );
}
