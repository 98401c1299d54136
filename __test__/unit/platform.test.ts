// lib/platform.cjs: napi's platform names, from package.json's napi.targets and of a process.
import { createRequire } from "node:module";
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const { platformOfTarget, supportedPlatforms, currentPlatform } = require("../../lib/platform.cjs");
const manifest = require("../../package.json");

describe("platformOfTarget", () => {
  it.each([
    ["x86_64-unknown-linux-gnu", "linux-x64-gnu"],
    ["aarch64-unknown-linux-musl", "linux-arm64-musl"],
    ["x86_64-apple-darwin", "darwin-x64"],
    ["aarch64-apple-darwin", "darwin-arm64"],
    ["x86_64-pc-windows-msvc", "win32-x64-msvc"],
    ["armv7-unknown-linux-gnueabihf", "linux-arm-gnueabihf"],
  ])("%s is %s", (triple, name) => {
    expect(platformOfTarget(triple)).toBe(name);
  });

  it("refuses what is not a triple", () => {
    expect(() => platformOfTarget("linux")).toThrow(/not a target triple/);
  });
});

describe("supportedPlatforms", () => {
  it("names every napi.targets entry, in order, and each has its npm/ package", () => {
    const names = supportedPlatforms(manifest);
    expect(names).toHaveLength(manifest.napi.targets.length);
    expect(names[0]).toBe(platformOfTarget(manifest.napi.targets[0]));
    expect([...names].sort()).toEqual(readdirSync(new URL("../../npm", import.meta.url)).sort());
  });

  it("refuses a manifest without napi.targets", () => {
    expect(() => supportedPlatforms({})).toThrow(/napi\.targets/);
  });
});

describe("currentPlatform", () => {
  it("spells glibc and musl Linux, macOS and Windows as napi does", () => {
    expect(currentPlatform({ platform: "linux", arch: "x64", glibc: "2.36" })).toBe("linux-x64-gnu");
    expect(currentPlatform({ platform: "linux", arch: "arm64", glibc: undefined })).toBe("linux-arm64-musl");
    expect(currentPlatform({ platform: "darwin", arch: "arm64" })).toBe("darwin-arm64");
    expect(currentPlatform({ platform: "win32", arch: "x64" })).toBe("win32-x64-msvc");
    expect(currentPlatform({ platform: "freebsd", arch: "x64" })).toBe("freebsd-x64");
  });

  it("of this process is one the package lists (the tests run on a supported platform)", () => {
    expect(supportedPlatforms(manifest)).toContain(currentPlatform());
  });
});
