#!/usr/bin/env bash
# The burst bench (not a test: it prints numbers; README, "Benchmarks"): 1,000 publishing deliveries from
# 50 repositories at concurrency 50, 10 % of them redeliveries, 5 % of dispatch attempts failing with
# 500, against the optimised build in workerd (Miniflare) with a fake GitHub. Prints the counts
# (dispatched, duplicate, in flight, 502, lost, double) and latency p50 / p99; exits non-zero if a push
# was lost or dispatched twice. tests/workerd/burst.test.mjs asserts a smaller run in scripts/test.sh.
#
#   scripts/bench-burst.sh [--deliveries N] [--repos N] [--concurrency N] [--redeliveries R] [--dispatch-failures R]
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
unset UPM_BUILD_PROFILE
bash scripts/setup.sh >/dev/null
bash scripts/build-worker.sh >/dev/null 2>&1 || bash scripts/build-worker.sh
exec node benches/burst.mjs "$@"
