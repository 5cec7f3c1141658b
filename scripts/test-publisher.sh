#!/usr/bin/env bash
# Runs every publisher test: unit tests of each stage, and end-to-end tests of the CLI against a real
# Verdaccio (started by the tests on 127.0.0.1), git fixture repositories and a fake Discord.
# Also holds the crate to rustfmt and clippy. Assumes scripts/setup.sh has run.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

if [ ! -x node_modules/.bin/node ] || [ ! -e node_modules/verdaccio/bin/verdaccio ]; then
  echo "test-publisher: Node 22 / Verdaccio missing under node_modules; run scripts/setup.sh first" >&2
  exit 1
fi

echo "==> cargo fmt --check -p upm-publisher" >&2
cargo fmt -p upm-publisher -- --check

echo "==> cargo clippy -p upm-publisher --all-targets -- -D warnings" >&2
cargo clippy --locked -p upm-publisher --all-targets --quiet -- -D warnings

echo "==> cargo test -p upm-publisher" >&2
cargo test --locked -p upm-publisher
