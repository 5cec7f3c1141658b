#!/usr/bin/env bash
# Runs every publisher test: unit tests of each stage, and end-to-end tests of the CLI against a real
# Verdaccio (started by the tests on 127.0.0.1), git fixture repositories and a fake Discord, and the
# parity test against the system npm (`npm pack --dry-run --json`), whose numbers it prints.
# Also holds the crate to rustfmt and clippy. Assumes scripts/setup.sh has run.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

if [ ! -x node_modules/.bin/node ] || [ ! -e node_modules/verdaccio/bin/verdaccio ]; then
  echo "test-publisher: Node 22 / Verdaccio missing under node_modules; run scripts/setup.sh first" >&2
  exit 1
fi

echo "==> cargo fmt --check -p upm-publisher -p upm-unity" >&2
cargo fmt -p upm-publisher -p upm-unity -- --check

echo "==> cargo clippy -p upm-publisher -p upm-unity --all-targets -- -D warnings" >&2
cargo clippy --locked -p upm-publisher -p upm-unity --all-targets --quiet -- -D warnings

# What Unity's Package Manager sees (its search call, the fields it reads, tarball files): pure.
echo "==> cargo test -p upm-unity" >&2
cargo test --locked -p upm-unity --quiet

# Parity with the system npm first, with its numbers shown (skipped, with a message, without npm).
echo "==> cargo test -p upm-publisher --test parity (tarball file lists and sizes against npm pack)" >&2
parity_log="$(mktemp)"
if ! cargo test --locked -p upm-publisher --test parity -- --nocapture >"$parity_log" 2>&1; then
  cat "$parity_log" >&2
  rm -f "$parity_log"
  exit 1
fi
grep -E '^(parity|SKIPPED|tree |[a-z-]+ +[0-9]+ +[0-9])' "$parity_log" >&2 || true
rm -f "$parity_log"

# Health end to end (fake GitHub, real Verdaccio), with what each run costs shown.
echo "==> cargo test -p upm-publisher --test health (fix pull requests; GitHub requests per run)" >&2
health_log="$(mktemp)"
if ! cargo test --locked -p upm-publisher --test health -- --nocapture >"$health_log" 2>&1; then
  cat "$health_log" >&2
  rm -f "$health_log"
  exit 1
fi
grep -E '^health GitHub requests' "$health_log" >&2 || true
rm -f "$health_log"

echo "==> cargo test -p upm-publisher" >&2
cargo test --locked -p upm-publisher -- --skip the_tarball_holds_exactly_what_npm_packs --skip a_large_package_compresses_like_npms \
  --skip random_trees_pack_like_npm \
  --skip one_fix_pull_request_with_exactly_the_machine_fixes_and_a_quiet_rerun_writes_nothing
