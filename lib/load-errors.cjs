// The errors of load-addon.cjs: why the native addon did not load, and what to do, each
// with a stable code: BUNDLED, MISSING_FILES, LIBC_MISMATCH, GLIBC_TOO_OLD,
// MISSING_PLATFORM_PACKAGE, UNSUPPORTED_PLATFORM, NATIVE_LOAD_FAILED. docs/deploy.md
// describes each deployment these name.
"use strict";

const { existsSync } = require("node:fs");
const { createRequire } = require("node:module");
const path = require("node:path");
const { PostgresStoreError } = require("./errors.cjs");
const { currentPlatform, supportedPlatforms, glibcVersion } = require("./platform.cjs");

const PACKAGE = "@aibind-rs/postgres";
const GLIBC_FLOOR = "2.17";
/**
 * Where each load error is explained: its section of docs/errors.md (shipped in the
 * package, and in the repository), which links on to the recipes in docs/deploy.md.
 */
function docs(code) {
  return `See docs/errors.md#${code.toLowerCase()} in ${PACKAGE} (in the installed package, or its repository).`;
}

function loadError(code, message, cause) {
  return new PostgresStoreError(code, `${message} ${docs(code)}`, { cause });
}

/**
 * A bundled copy that found no installed package, or a `.node` file read as JavaScript.
 * @param {string} detail
 * @param {unknown} [cause]
 */
function bundledError(detail, cause) {
  return loadError(
    "BUNDLED",
    `${PACKAGE} was bundled or transformed by a build tool (${detail}), so it cannot load its ` +
      "native addon: Node must load the package from node_modules. Leave it unbundled: " +
      `Next.js: \`serverExternalPackages: ["${PACKAGE}"]\` in next.config; ` +
      `Vite (SvelteKit, Nuxt, ...): \`ssr: { external: ["${PACKAGE}"] }\` in the Vite config; ` +
      `SvelteKit's adapter-node bundles devDependencies: install it into "dependencies" ` +
      `(\`npm install ${PACKAGE}\`, not -D), so that \`npm ci --omit=dev\` installs it. ` +
      "Edge runtimes and Cloudflare Workers cannot load native addons: use the Node.js runtime.",
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
 * A copy made by a file tracer holds only what the entry reaches: not the package's CLI
 * nor its Rust source, which npm always installs.
 * @param {string} dir
 */
function tracedCopy(dir) {
  return !existsSync(path.join(dir, "cli.mjs")) && !existsSync(path.join(dir, "Cargo.toml"));
}

/** How to make a tracer copy the package and its addon, naming the missing file. */
function tracingFix(missing, here) {
  return (
    `${missing} is missing: the deployment was made by a file tracer (Next.js \`output: "standalone"\`, ` +
    "Vercel, SvelteKit's adapter-vercel, Nitro) that left it out. Deploy with a version of the package " +
    "whose files the tracer follows, or copy the files explicitly: in next.config, " +
    `\`outputFileTracingIncludes: { "/*": ["./node_modules/${PACKAGE}/**", "./node_modules/${PACKAGE}-${here}/**"] }\`; ` +
    "for other tracers, copy both folders into the deployment's node_modules."
  );
}

/**
 * The other C library's build for this CPU, where it is installed (a platform package or
 * a `.node` file beside binding.cjs): the image that installed it is not the one running.
 * @param {string} dir the package's folder
 * @param {string} here
 */
function otherLibc(dir, here) {
  const m = /^linux-(\w+)-(gnu|musl)$/.exec(here);
  if (!m) return null;
  const other = `linux-${m[1]}-${m[2] === "gnu" ? "musl" : "gnu"}`;
  if (existsSync(path.join(dir, `aibind-postgres.${other}.node`))) return other;
  try {
    createRequire(path.join(dir, "package.json")).resolve(`${PACKAGE}-${other}/package.json`);
    return other;
  } catch {
    return null;
  }
}

function libcMismatch(here, other, cause) {
  const libc = here.endsWith("-musl") ? "musl" : "glibc";
  return loadError(
    "LIBC_MISMATCH",
    `${PACKAGE} runs on ${here} (${libc}), but node_modules holds the ${other} build: it was installed ` +
      `on another system (an image with the other C library, such as a glibc builder stage for an Alpine ` +
      `runtime) and copied here. Run \`npm ci\` inside the runtime image, or install the build for it: ` +
      `\`npm install --os=linux --cpu=${here.split("-")[1]} --libc=${libc === "musl" ? "musl" : "glibc"}\`.`,
    cause,
  );
}

/**
 * The error for a binding.cjs that failed to load, by what failed.
 * @param {unknown} cause what requiring binding.cjs threw
 * @param {string} dir the package's folder (where binding.cjs is, or should be)
 */
function bindingError(cause, dir) {
  const here = currentPlatform();
  let supported = null; // package.json's napi.targets as platforms (null if unreadable)
  try {
    supported = supportedPlatforms(createRequire(path.join(dir, "load-addon.cjs"))("./package.json"));
  } catch {}
  const fromSource =
    (supported === null ? "" : ` Prebuilt binaries exist for: ${supported.join(", ")}.`) +
    " To build it from source instead (the package ships its Rust source): install Rust " +
    `(https://rustup.rs), then in node_modules/${PACKAGE} run ` +
    "`npx @napi-rs/cli@3 build --platform --release --js binding.cjs --dts binding.d.ts`.";
  const all = messages(cause);
  if (all.length === 1 && /^Cannot find module .*binding\.cjs'/.test(all[0])) {
    return loadError("MISSING_FILES", tracingFix(path.join(dir, "binding.cjs"), here), cause);
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
      `${PACKAGE} has no prebuilt binary for ${here}.${fromSource}${causeText}`,
      cause,
    );
  }
  const other = otherLibc(dir, here);
  // binding.cjs tried this folder's addon, then the platform package: both not found.
  if (tried.length > 0 && tried.every((m) => /^Cannot find module /.test(m))) {
    if (other !== null) return libcMismatch(here, other, cause);
    if (tracedCopy(dir)) {
      return loadError("MISSING_FILES", `${tracingFix(`${PACKAGE}-${here}`, here)}${causeText}`, cause);
    }
    return loadError(
      "MISSING_PLATFORM_PACKAGE",
      `${PACKAGE} could not load its native addon for ${here}: the optional dependency ` +
        `${PACKAGE}-${here} is not installed: installed with --omit=optional, or the lockfile was ` +
        `made on another platform (npm/cli#4828) or copied from another image. Reinstall on this machine ` +
        "(`rm -rf node_modules && npm install`), or in a Docker image run `npm ci` in the image that runs " +
        `the app.${fromSource}${causeText}`,
      cause,
    );
  }
  const reason = tried.find((m) => !/^Cannot find module /.test(m)) ?? all[0].split("\n")[0];
  const needs = /GLIBC_(\d+\.\d+(?:\.\d+)?)' not found/.exec(reason);
  if (needs) {
    return loadError(
      "GLIBC_TOO_OLD",
      `${PACKAGE}'s ${here} binary needs glibc ${needs[1]}, and this system has ${glibcVersion() ?? "an older one"}. ` +
        `Its published binaries need glibc ${GLIBC_FLOOR} or newer; this one was built on a newer system: ` +
        "install the published package, or build it from source on this system." +
        `${fromSource} Cause: ${reason}`,
      cause,
    );
  }
  if (other !== null || /libc\.musl|ld-musl|ld-linux|libc\.so\.6|__libc_|symbol not found/.test(reason)) {
    return libcMismatch(here, other ?? `other-libc`, cause);
  }
  return loadError("NATIVE_LOAD_FAILED", `${PACKAGE} could not load its native addon for ${here}: ${reason}`, cause);
}

module.exports = { bindingError, bundledError, GLIBC_FLOOR };
