#!/usr/bin/env bash
# The worker's tests in real workerd (scripts/test.sh runs this after the native `cargo test`):
#   1. tests/workerd/replay.test.mjs — scripts/dev.sh (wrangler dev, dry run) on a free 127.0.0.1 port and
#      the README's replay recipe (scripts/replay.sh, openssl + curl) against it. First, because wrangler
#      dev's [build] step rewrites build/ with an unoptimised module;
#   2. scripts/build-worker.sh — the optimised build that is deployed;
#   3. every other tests/workerd/*.test.mjs — that build in Miniflare with a fake GitHub.
# Exits non-zero if any part fails; every part runs even when an earlier test file failed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

# Per test and per hook (the readiness wait of wrangler dev included; see replay.test.mjs).
node_test=(node --test --test-reporter=spec --test-timeout=240000)
status=0

# wrangler dev's [build] step is this same dev build: compiled here first, with no clock running, it is up
# to date when wrangler dev runs it, so the test's readiness bound measures wrangler's start and not a cold
# compile of the worker (from a clean clone on a loaded 2-core machine that took over the 180 s bound).
echo "==> workerd: the dev build wrangler dev runs (scripts/build-worker.sh --dev)" >&2
bash scripts/build-worker.sh --dev

echo "==> workerd: the replay recipe against wrangler dev (scripts/dev.sh)" >&2
"${node_test[@]}" tests/workerd/replay.test.mjs || status=1

echo "==> workerd: optimised build (scripts/build-worker.sh)" >&2
bash scripts/build-worker.sh

miniflare_tests=()
for file in tests/workerd/*.test.mjs; do
  [ "$file" = tests/workerd/replay.test.mjs ] || miniflare_tests+=("$file")
done
echo "==> workerd: Miniflare tests with a fake GitHub (${#miniflare_tests[@]} files)" >&2
"${node_test[@]}" "${miniflare_tests[@]}" || status=1

if [ "$status" -ne 0 ]; then
  echo "test-worker: FAILED (see above)" >&2
fi
exit "$status"
