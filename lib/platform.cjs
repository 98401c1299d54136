// Platform names as napi-rs spells them ("linux-x64-gnu", "darwin-arm64",
// "win32-x64-msvc"): of a Rust target triple in package.json's `napi.targets` (the one
// list of platforms with a prebuilt binary), and of this process. load-addon.cjs names
// both when the addon cannot load; scripts/test-pack.mjs checks the published manifest
// against the same list.
"use strict";

const CPUS = {
  x86_64: "x64",
  aarch64: "arm64",
  i686: "ia32",
  armv7: "arm",
  riscv64gc: "riscv64",
  powerpc64le: "ppc64",
  s390x: "s390x",
};
const SYSTEMS = { linux: "linux", darwin: "darwin", windows: "win32", freebsd: "freebsd", android: "android" };

/**
 * napi's platform name of a Rust target triple: "x86_64-unknown-linux-gnu" →
 * "linux-x64-gnu", "aarch64-apple-darwin" → "darwin-arm64", "x86_64-pc-windows-msvc" →
 * "win32-x64-msvc".
 * @param {string} triple
 * @returns {string}
 */
function platformOfTarget(triple) {
  const parts = triple.split("-");
  if (parts.length < 3) throw new Error(`not a target triple: ${triple}`);
  const [cpu, , system, abi] = parts;
  const arch = CPUS[/** @type {keyof typeof CPUS} */ (cpu)] ?? cpu;
  const platform = SYSTEMS[/** @type {keyof typeof SYSTEMS} */ (system)] ?? system;
  return abi === undefined ? `${platform}-${arch}` : `${platform}-${arch}-${abi}`;
}

/**
 * The platforms package.json's `napi.targets` lists, in its order.
 * @param {{ napi?: { targets?: unknown } }} manifest package.json
 * @returns {string[]}
 */
function supportedPlatforms(manifest) {
  const targets = manifest?.napi?.targets;
  if (!Array.isArray(targets)) throw new Error("package.json has no napi.targets");
  return targets.map((t) => platformOfTarget(String(t)));
}

/**
 * This process's platform in napi's spelling: on Linux, "-gnu" when the C library is glibc
 * (it reports a glibc version), else "-musl"; on Windows, "-msvc".
 * @param {{ platform: string, arch: string, glibc?: unknown }} [here] defaults to this process
 * @returns {string}
 */
function currentPlatform(here) {
  const { platform, arch, glibc } = here ?? {
    platform: process.platform,
    arch: process.arch,
    glibc: process.platform === "linux" ? glibcVersion() : undefined,
  };
  const libc = platform === "linux" ? (glibc ? "-gnu" : "-musl") : "";
  return `${platform}-${arch}${libc}${platform === "win32" ? "-msvc" : ""}`;
}

/** @returns {string | undefined} the glibc version Node runs on, or undefined (musl) */
function glibcVersion() {
  const report = /** @type {{ header?: { glibcVersionRuntime?: string } } | undefined} */ (
    process.report?.getReport?.()
  );
  const version = report?.header?.glibcVersionRuntime;
  return typeof version === "string" ? version : undefined;
}

module.exports = { platformOfTarget, supportedPlatforms, currentPlatform, glibcVersion };
