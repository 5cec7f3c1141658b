#!/usr/bin/env bash
# Runs the tests of the GitHub client (upm-github: the redelivery rule, auth, pagination, rate limits,
# conditional GETs, against the fake GitHub), of the fake itself (upm-fake-github, library and binary)
# and of the `upm` operations CLI (upm-ops: every subcommand end to end against the fake on loopback).
# Also holds these crates to rustfmt and clippy, and checks that the redelivery rule still builds for
# the wasm worker (no native dependencies). No network: everything listens on 127.0.0.1. The `upm trace`,
# `upm slo` and `upm probe` tests start a real Verdaccio from node_modules (installed by scripts/setup.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

crates=(-p upm-github -p upm-fake-github -p upm-ops)

echo "==> cargo fmt --check (github, fake-github, ops)" >&2
cargo fmt "${crates[@]}" -- --check

echo "==> cargo clippy (github, fake-github, ops) -- -D warnings" >&2
cargo clippy --locked "${crates[@]}" --all-targets --quiet -- -D warnings

echo "==> the shared redelivery rule builds for wasm32 without the client" >&2
cargo check --locked -p upm-github --no-default-features --target wasm32-unknown-unknown --quiet

echo "==> cargo test (github, fake-github, ops)" >&2
cargo test --locked "${crates[@]}"
