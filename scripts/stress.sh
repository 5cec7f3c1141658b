#!/usr/bin/env bash
# Runs a test command N times in a row with a CPU hog beside it, and tallies the runs: the test gate must
# never fail by chance, and a loaded 2-core machine is where timing assumptions break first.
#
#   scripts/stress.sh [RUNS] [COMMAND...]       default: 20 × scripts/test-system.sh
#   HOGS=2 scripts/stress.sh 3 bash scripts/test.sh
#
# HOGS busy loops (default 1) run for the whole series and are killed when it ends, however it ends. Each
# run's output goes to $STRESS_LOGS/run-N.log (default: a new temporary folder); a failed run's tail is
# printed. Exits non-zero when any run failed. Not part of scripts/test.sh: it is the long check.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

runs="${1:-20}"
shift || true
if [ "$#" -eq 0 ]; then set -- bash scripts/test-system.sh; fi
case "$runs" in ''|*[!0-9]*) echo "stress: RUNS must be a whole number, got '$runs'" >&2; exit 2 ;; esac
logs="${STRESS_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/upm-stress-XXXXXX")}"
mkdir -p "$logs"

hogs=()
stop_hogs() { [ "${#hogs[@]}" -eq 0 ] || kill "${hogs[@]}" 2>/dev/null || true; }
trap stop_hogs EXIT
for _ in $(seq 1 "${HOGS:-1}"); do
  # Bounded even if this script is killed without running its trap.
  timeout 6h sh -c 'while :; do :; done' &
  hogs+=("$!")
done

passed=0 failed=0
for i in $(seq 1 "$runs"); do
  started=$SECONDS
  if "$@" >"$logs/run-$i.log" 2>&1; then
    passed=$((passed + 1)); verdict=pass
  else
    failed=$((failed + 1)); verdict=FAIL
  fi
  printf 'stress: run %d/%d %s in %d s (%s)\n' "$i" "$runs" "$verdict" "$((SECONDS - started))" "$logs/run-$i.log" >&2
  if [ "$verdict" = FAIL ]; then
    grep -E '✖|not ok|Error|error:|panicked|FAILED' "$logs/run-$i.log" | head -n 20 >&2 || true
  fi
done

echo "stress: $runs × '$*' beside ${HOGS:-1} CPU hog(s), logs in $logs"
echo "stress: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
