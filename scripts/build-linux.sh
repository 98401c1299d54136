#!/usr/bin/env bash
# Builds the Linux binaries as they are published, checks the C library each needs, and
# loads each where a Node for it runs here. One command for a developer, .ci/run and the
# release workflow (.github/workflows/CI.yml):
#
#   bash scripts/build-linux.sh [x64-gnu] [arm64-gnu] [x64-musl] [arm64-musl]   (default: all four)
#
# - gnu targets are built against glibc 2.17 (cargo-zigbuild's `<triple>.2.17`, through
#   `napi build -x`), so they load on every glibc Linux from RHEL 7 / Amazon Linux 2 on;
#   musl targets with cargo-zigbuild too. cargo-zigbuild and zig come from PyPI
#   (`cargo-zigbuild`, `ziglang`), installed here if missing.
# - scripts/check-symbols.mjs then fails on any glibc symbol version above 2.17 (gnu), or
#   any glibc symbol or non-musl library (musl).
# - x64-gnu is loaded natively and runs scripts/smoke.mjs (a stream across processes,
#   through a connection string and a pg.Pool) when DATABASE_URL is set (run it under
#   `node scripts/with-postgres.mjs` for a throwaway PostgreSQL); arm64-gnu does the same
#   under qemu-user when SMOKE_ARM64=1 (scripts/smoke-arm64.sh). Binaries land in the
#   repository's root as `aibind-postgres.<platform>.node`, where `npm run build` puts its own.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== build-linux: %s (%ss)\n' "$*" "$SECONDS"; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x64-gnu arm64-gnu x64-musl arm64-musl)

command -v cargo >/dev/null || export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo-zigbuild >/dev/null || ! python3 -c "import ziglang" 2>/dev/null; then
  step "pip install cargo-zigbuild ziglang (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check cargo-zigbuild==0.24.1 ziglang==0.17.1 ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages cargo-zigbuild==0.24.1 ziglang==0.17.1
  hash -r
fi
# napi's -x wants `zig` on the PATH: the one from PyPI, through a shim.
if ! command -v zig >/dev/null; then
  shim="$(mktemp -d)"
  printf '#!/bin/sh\nexec python3 -m ziglang "$@"\n' >"$shim/zig"
  chmod +x "$shim/zig"
  export PATH="$shim:$PATH"
fi

for t in "${targets[@]}"; do
  case "$t" in
    x64-gnu) triple=x86_64-unknown-linux-gnu suffix=.2.17 ;;
    arm64-gnu) triple=aarch64-unknown-linux-gnu suffix=.2.17 ;;
    x64-musl) triple=x86_64-unknown-linux-musl suffix= ;;
    arm64-musl) triple=aarch64-unknown-linux-musl suffix= ;;
    *)
      echo "build-linux: unknown target $t (x64-gnu, arm64-gnu, x64-musl, arm64-musl)" >&2
      exit 2
      ;;
  esac
  file="aibind-postgres.linux-$t.node"
  step "$t: napi build --target $triple$suffix -x"
  rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
  npx napi build --platform --release --target "$triple$suffix" -x --js binding.cjs --dts binding.d.ts
  step "$t: the C library it needs (objdump)"
  node scripts/check-symbols.mjs "$file"
  case "$t" in
    x64-gnu)
      step "$t: loads in this Node"
      node -e 'const b = require("./binding.cjs"); if (typeof b.NativeStreamStore !== "function") process.exit(1); console.log("loaded", require.resolve("./'"$file"'"))'
      if [ -n "${DATABASE_URL:-}" ]; then
        step "$t: scripts/smoke.mjs"
        node scripts/smoke.mjs
      fi
      ;;
    arm64-gnu)
      if [ "${SMOKE_ARM64:-}" = 1 ]; then
        step "$t: under qemu-user (scripts/smoke-arm64.sh)"
        bash scripts/smoke-arm64.sh "$file"
      fi
      ;;
  esac
done
step "done: ${targets[*]}"
