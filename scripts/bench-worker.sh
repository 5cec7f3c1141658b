#!/usr/bin/env bash
# Benchmarks of the worker (not a test: it prints numbers). README, "Benchmarks".
#
#   scripts/bench-worker.sh            # SIZES=10k,1m,5m,10m,25m RUNS= (per-size defaults) COLD_STARTS=5
#
# 1. the optimised build (scripts/build-worker.sh): wasm size raw and gzip -9;
# 2. `wrangler deploy --dry-run --outdir <tmp>`: the upload size wrangler reports (works offline);
# 3. benches/workerd_latency.mjs: our worker against the original JavaScript worker
#    (../shared/peers/upm-original/cloudflare-worker-index.js, run as it is; PEER_WORKER overrides the
#    path) side by side in one Miniflare with one fake GitHub, minus a floor worker that only reads the
#    body: own time, ratio, and our per-stage breakdown for pushes of 10 KB to 25 MB; and the first
#    request after load;
# 4. `cargo bench --bench verify_parse`: native verify + parse throughput, the floor.
# Ends with one summary table.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
unset UPM_BUILD_PROFILE # the deployed (optimised) build, whatever the calling shell says

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
step() { printf '\n==> %s\n' "$*"; }
kib() { awk -v b="$1" 'BEGIN { printf "%d B (%.1f KiB)", b, b / 1024 }'; }

step "optimised build (scripts/build-worker.sh)"
if ! bash scripts/build-worker.sh >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  exit 1
fi
wasm_raw=$(stat -c %s build/index_bg.wasm)
wasm_gzip=$(gzip -9 -c build/index_bg.wasm | wc -c)
js_raw=$(stat -c %s build/index.js)
echo "build/index_bg.wasm: $(kib "$wasm_raw") raw, $(kib "$wasm_gzip") gzip -9; build/index.js: $(kib "$js_raw")"

step "wrangler deploy --dry-run (offline; reruns the [build] step)"
if ! wrangler deploy --dry-run --outdir "$work/dist" >"$work/deploy.log" 2>&1; then
  cat "$work/deploy.log" >&2
  exit 1
fi
upload=$(grep -m 1 -o 'Total Upload: .*' "$work/deploy.log" || echo "Total Upload: (not reported)")
echo "$upload"

step "workerd latency (benches/workerd_latency.mjs)"
node benches/workerd_latency.mjs --sizes "${SIZES:-10k,1m,5m,10m,25m}" --runs "${RUNS:-}" \
  --cold-starts "${COLD_STARTS:-5}" | tee "$work/latency.out" | grep -v '^RESULT'
result() { awk -F'\t' -v k="$1" '$1 == "RESULT" && $2 == k { print $3 }' "$work/latency.out"; }

step "native verify + parse (cargo bench --bench verify_parse)"
cargo bench --locked --bench verify_parse 2>"$work/cargo.log" | tee "$work/native.out" || {
  cat "$work/cargo.log" >&2
  exit 1
}
native() { awk -v p="$1" '$1 " " $2 == p && /verify \+ parse/ { print $(NF - 2) }' "$work/native.out"; }

cores=$(nproc 2>/dev/null || echo "?")
printf '\nSummary (%s, %s cores, shared)\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$cores"
row() { printf '  %-44s %s\n' "$1" "$2"; }
row "wasm raw" "$(kib "$wasm_raw")"
row "wasm gzip -9" "$(kib "$wasm_gzip")"
row "wrangler deploy --dry-run" "${upload#Total Upload: }"
row "first request after load (Miniflare ready)" "$(result first_request_ms) ms (target <= 50)"
for size in 10k 1m 5m 10m 25m; do
  [ -n "$(result "${size}_ratio")" ] || continue
  row "$size push: own time ours / original JS" \
    "$(result "${size}_own_ms") ms / $(result "${size}_peer_own_ms") ms = $(result "${size}_ratio")"
done
row "native verify + parse, 10 KB" "$(native '10 KB') MB/s"
row "native verify + parse, 1 MB" "$(native '1 MB') MB/s"
