#!/usr/bin/env node
// Packs this checkout as npm would publish it, for installing into an app before a
// release: the main package (staged: no scripts, the platform packages as optional
// dependencies) and this machine's platform package with the addon built here.
//
//   npm install                                   # in this checkout: builds the addon
//   node scripts/pack-tarballs.mjs ../tarballs    # then prints the app's install command
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import process from "node:process";
import { packTarballs } from "./pack.mjs";

const folder = process.argv[2];
if (!folder) {
  console.error("usage: node scripts/pack-tarballs.mjs <folder>");
  process.exit(2);
}
const work = resolve(folder);
mkdirSync(work, { recursive: true });
const { main, platformTgz } = packTarballs(work);
console.log(`in your app: npm install ${main} ${platformTgz}`);
