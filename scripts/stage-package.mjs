#!/usr/bin/env node
// The package as it is published: this checkout's `files` and a clean package.json, in a
// folder to `npm pack` or `npm publish`. The manifest here keeps `prepare` (so that
// `npm install` in a checkout builds the addon) and the dev tooling; the published one
// carries no scripts at all (nothing runs when a user installs it, and npm has no
// install script to warn about) and lists each platform package of napi.targets as an
// optional dependency at this version, so npm installs the one that fits.
//
//   node scripts/stage-package.mjs <folder>
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** The platform packages under npm/, by name, each checked against the main version. */
export function platformPackages(version) {
  return readdirSync(join(root, "npm"))
    .map((dir) => JSON.parse(readFileSync(join(root, "npm", dir, "package.json"), "utf8")))
    .map((pkg) => {
      if (pkg.version !== version)
        throw new Error(`${pkg.name} is at ${pkg.version}, the package at ${version}: run \`napi version\``);
      return pkg.name;
    })
    .sort();
}

export function stagePackage(folder) {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const platforms = platformPackages(pkg.version);
  if (platforms.length !== pkg.napi.targets.length) {
    throw new Error(`npm/ holds ${platforms.length} platform packages, napi.targets lists ${pkg.napi.targets.length}`);
  }
  const { scripts, devDependencies, allowScripts, ...published } = pkg;
  published.optionalDependencies = Object.fromEntries(platforms.map((name) => [name, pkg.version]));
  rmSync(folder, { recursive: true, force: true });
  mkdirSync(folder, { recursive: true });
  for (const entry of pkg.files) {
    if (!existsSync(join(root, entry))) throw new Error(`package.json files lists ${entry}, which is missing`);
    cpSync(join(root, entry), join(folder, entry), { recursive: true });
  }
  for (const doc of ["README.md", "LICENSE"])
    if (existsSync(join(root, doc))) cpSync(join(root, doc), join(folder, doc));
  writeFileSync(join(folder, "package.json"), `${JSON.stringify(published, null, 2)}\n`);
  return folder;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const folder = process.argv[2];
  if (!folder) {
    console.error("usage: node scripts/stage-package.mjs <folder>");
    process.exit(2);
  }
  console.log(stagePackage(resolve(folder)));
}
