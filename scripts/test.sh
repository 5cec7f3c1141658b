#!/usr/bin/env bash
# The one command that installs everything and runs every check and test (README, "Test").
#
#   scripts/test.sh
#
# Order: cheapest first, so a formatting slip fails in seconds, not after the workerd and Verdaccio suites.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

started=$SECONDS
step() { printf '\n==> [%ss] %s\n' "$((SECONDS - started))" "$*" >&2; }

step "setup"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (native, all targets) and clippy (wasm32 worker glue)"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p upm-relay --lib --target wasm32-unknown-unknown --locked -- -D warnings

step "worker: native tests of every stage"
cargo test -p upm-relay --locked

step "worker: build, tests in real workerd (Miniflare) and the curl replay against wrangler dev"
bash scripts/test-worker.sh

step "worker: fuzz smoke, 10 s per cargo fuzz target (scripts/fuzz.sh --smoke; skipped without nightly)" && bash scripts/fuzz.sh --smoke

step "publisher: unit tests and tests against a real Verdaccio"
bash scripts/test-publisher.sh

step "ops: the GitHub client, the fake GitHub and the upm CLI (loopback)"
bash scripts/test-ops.sh

step "system: the Phase 5 matrix end to end (git → worker → fake GitHub → publisher → Verdaccio, Discord)"
bash scripts/test-system.sh

step "workflows: actionlint and zizmor"
bash scripts/lint-workflows.sh

step "all checks passed in $((SECONDS - started)) s"
