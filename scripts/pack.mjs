// Packs what npm would publish: the main package from its staged folder (see
// stage-package.mjs) and this machine's platform package with the release addon built
// here. Shared by test:pack and test:frameworks.
import { execFileSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { stagePackage } from "./stage-package.mjs";

const root = fileURLToPath(new URL("..", import.meta.url));
export const platform = "linux-x64-gnu";

const pack = (dir, work) =>
  join(
    work,
    execFileSync("npm", ["pack", "--ignore-scripts", "--pack-destination", work], {
      cwd: dir,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    })
      .trim()
      .split("\n")
      .at(-1) ?? "",
  );

/**
 * `{ main, platformTgz, version }`: the two tarballs, written into `work`. With
 * `onlyBuiltPlatform`, the main package's optionalDependencies list only the platform
 * package packed here: the others are not published, so a lockfile could not hold them and
 * `npm ci` (the Docker recipes of test:frameworks) would refuse it.
 * @param {string} work
 * @param {{ onlyBuiltPlatform?: boolean }} [options]
 */
export function packTarballs(work, { onlyBuiltPlatform = false } = {}) {
  if (`${process.platform}-${process.arch}` !== "linux-x64") {
    throw new Error(`the tests pack the ${platform} package; this is ${process.platform}-${process.arch}`);
  }
  const addon = join(root, `aibind-postgres.${platform}.node`);
  if (!existsSync(addon)) throw new Error(`${addon} is missing: run \`npm run build\` first`);
  const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version;
  const staged = stagePackage(join(work, "staged"));
  if (onlyBuiltPlatform) {
    const manifest = JSON.parse(readFileSync(join(staged, "package.json"), "utf8"));
    manifest.optionalDependencies = { [`@aibind-rs/postgres-${platform}`]: version };
    writeFileSync(join(staged, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  }
  const main = pack(staged, work);
  const platformDir = join(work, platform);
  cpSync(join(root, "npm", platform), platformDir, { recursive: true });
  copyFileSync(addon, join(platformDir, `aibind-postgres.${platform}.node`));
  return { main, platformTgz: pack(platformDir, work), version };
}
