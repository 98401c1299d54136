// What frameworks/test.mjs checks of a deployment's files: each recipe's folder made as
// docs/deploy.md says, outside the project tree (no parent node_modules to fall back on).
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, isAbsolute, join, relative } from "node:path";
import { platform } from "../scripts/pack.mjs";

/**
 * Fails unless the package's loader, binding.cjs and this platform's addon resolve from
 * `from` (a file of the deployment) to files inside `dir`, the deployment's folder.
 */
export function expectAddon(what, dir, from = join(dir, "server.js")) {
  const inside = (file) => {
    const rel = relative(dir, file);
    if (rel.startsWith("..") || isAbsolute(rel)) throw new Error(`${what}: ${file} resolved outside ${dir}`);
    if (!existsSync(file)) throw new Error(`${what}: ${file} is missing`);
  };
  let pkg;
  try {
    pkg = dirname(createRequire(from).resolve("@aibind-rs/postgres/package.json"));
  } catch (err) {
    throw new Error(`${what}: @aibind-rs/postgres is not in ${dir}: ${err}`);
  }
  inside(join(pkg, "load-addon.cjs"));
  inside(join(pkg, "binding.cjs"));
  const platformPkg = dirname(
    createRequire(join(pkg, "package.json")).resolve(`@aibind-rs/postgres-${platform}/package.json`),
  );
  inside(join(platformPkg, `aibind-postgres.${platform}.node`));
}

/**
 * SvelteKit adapter-node's Docker recipe: `build/`, package.json and the lockfile into a
 * fresh folder, then `npm ci --omit=dev` there (what a runtime stage of a Dockerfile does).
 * @param {string} app the built app
 * @param {string} dir the fresh folder (a sibling of `app`: the lockfile's file: tarballs resolve the same)
 * @param {(cmd: string, args: string[], cwd: string) => unknown} run
 */
export function sveltekitDockerRecipe(app, dir, run) {
  mkdirSync(dir);
  cpSync(join(app, "build"), join(dir, "build"), { recursive: true });
  for (const file of ["package.json", "package-lock.json"]) cpSync(join(app, file), join(dir, file));
  run("npm", ["ci", "--omit=dev", "--ignore-scripts"], dir);
  for (const dev of ["vite", "@sveltejs/kit"]) {
    if (existsSync(join(dir, "node_modules", dev)))
      throw new Error(`Docker recipe: ${dev} was installed with --omit=dev`);
  }
  return dir;
}

/**
 * Next's Docker recipe: `.next/standalone` copied out of the project, with `.next/static`
 * beside its server.js. The copy must hold the addon (the file tracer followed the loader).
 */
export function nextStandalone(app, dir) {
  cpSync(join(app, ".next", "standalone"), dir, { recursive: true });
  cpSync(join(app, ".next", "static"), join(dir, ".next", "static"), { recursive: true });
  expectAddon("Next standalone", dir);
  return dir;
}

/**
 * adapter-vercel's function folder (`.vercel/output/functions/*.func`, symlinks resolved)
 * copied out of the project: what Vercel uploads. It must hold the addon.
 */
export function vercelFunction(app, dir) {
  const functions = join(app, ".vercel", "output", "functions");
  const found = [];
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (entry.isDirectory() && entry.name.endsWith(".func")) found.push(join(d, entry.name));
      else if (entry.isDirectory()) walk(join(d, entry.name));
    }
  };
  walk(functions);
  if (found.length === 0) throw new Error(`adapter-vercel: no function folder under ${functions}`);
  cpSync(found[0], dir, { recursive: true, dereference: true });
  const config = JSON.parse(readFileSync(join(dir, ".vc-config.json"), "utf8"));
  if (!String(config.runtime).startsWith("nodejs")) throw new Error(`adapter-vercel: runtime ${config.runtime}`);
  expectAddon("adapter-vercel function", dir, join(dir, config.handler));
  return dir;
}
