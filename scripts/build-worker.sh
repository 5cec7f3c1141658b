#!/usr/bin/env bash
# Builds the worker into build/ (index.js + index_bg.wasm) with worker-build, using only local tools.
# `--dev` (or UPM_BUILD_PROFILE=dev, which scripts/dev.sh sets for wrangler's [build] step) skips wasm-opt
# for a faster edit-run loop; deploys, tests and benchmarks use the optimised build.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
if [ -z "$WASM_BINDGEN_BIN" ]; then
  echo "build-worker: wasm-bindgen not found; run scripts/setup.sh first" >&2
  exit 1
fi
if [ "${1:-}" = "--dev" ] || [ "${UPM_BUILD_PROFILE:-}" = "dev" ]; then
  exec worker-build --release --no-opt
fi
exec worker-build --release
