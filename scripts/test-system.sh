#!/usr/bin/env bash
# The end-to-end system test (tests/system/): real git repositories, the worker in workerd, the fake
# GitHub (crates/fake-github), the publisher CLI as handle-publish-request.yml runs it, a real Verdaccio and
# a fake Discord, all on 127.0.0.1. scripts/test.sh runs it; it can also run on its own.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

bash scripts/setup.sh
echo "==> system: the worker (optimised build), the publisher and the fake GitHub" >&2
bash scripts/build-worker.sh
cargo build --locked -p upm-publisher -p upm-fake-github

echo "==> system: the Phase 5 matrix" >&2
node --test --test-reporter=spec --test-timeout=300000 tests/system/matrix.test.mjs
