#!/usr/bin/env bash
# Fuzzes the worker's stages with cargo fuzz (libFuzzer, nightly Rust): fuzz/fuzz_targets/
#   read_verify  the request head and body through admit, the signature check and the payload extraction
#   classify     any bytes as a push, a ping or another event
#   filter       a parsed push through the filter and the dispatch it decides
#
#   scripts/fuzz.sh                 # the campaign: FUZZ_RUNS executions per target (default 3,400,000:
#                                   # over 10 million in all), then a summary; exits non-zero on a crash
#   scripts/fuzz.sh --smoke         # 10 s per target (scripts/test.sh runs this); skips, with a message,
#                                   # when the nightly toolchain is not installed
#   FUZZ_TARGETS="classify" scripts/fuzz.sh
#
# cargo-fuzz is installed from crates.io (pinned) the first time fuzzing is asked for; nothing else in the
# project needs it. A crash leaves its input in fuzz/artifacts/<target>/: add it to the regression tests
# (src/delivery_tests.rs, the hostile catalogue, or the stage's own tests) before fixing it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

CARGO_FUZZ_VERSION=0.13.2
mode="${1:-campaign}"
targets=(${FUZZ_TARGETS:-read_verify classify filter})

if ! rustup toolchain list | grep -q '^nightly'; then
  if [ "$mode" = "--smoke" ]; then
    echo "fuzz: SKIPPED: the nightly toolchain is not installed (rustup toolchain install nightly)" >&2
    exit 0
  fi
  echo "fuzz: cargo fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
if [ "$(cargo fuzz --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+')" != "$CARGO_FUZZ_VERSION" ]; then
  echo "==> cargo install cargo-fuzz $CARGO_FUZZ_VERSION (once)" >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# Seeds: the real GitHub payloads and the crafted publishing push (the corpus grows in fuzz/corpus/,
# which is git-ignored).
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  for seed in tests/fixtures/github-webhooks/push/*.json tests/fixtures/github-webhooks/ping/*.json \
    tests/fixtures/push-package-json.json; do
    # read_verify and classify read a selector byte first; filter takes the payload as it is.
    out="fuzz/corpus/$target/seed-$(basename "$(dirname "$seed")")-$(basename "$seed")"
    if [ "$target" = filter ]; then cp "$seed" "$out"; else { printf '\000'; cat "$seed"; } > "$out"; fi
  done
done

if [ "$mode" = "--smoke" ]; then
  limit=(-max_total_time="${FUZZ_SMOKE_SECONDS:-10}")
else
  limit=(-runs="${FUZZ_RUNS:-3400000}")
fi

status=0
summary=()
for target in "${targets[@]}"; do
  echo "==> cargo fuzz run $target ${limit[*]}" >&2
  log="$(mktemp)"
  # No sanitizer: the stages are safe Rust (no `unsafe`), so AddressSanitizer would only slow the search
  # down (about 3×); panics, overflows (debug assertions are on) and timeouts are what is looked for.
  if cargo +nightly fuzz run --sanitizer none --fuzz-dir fuzz "$target" -- "${limit[@]}" -max_len=65536 \
    -timeout=10 -print_final_stats=1 \
    2>&1 | tee "$log" | grep -E '^(#[0-9]+.*(DONE|INITED)|==[0-9]+==|SUMMARY|thread .* panicked)' >&2; then
    :
  fi
  if grep -q 'Done [0-9]* runs\|stat::number_of_executed_units' "$log" && ! grep -qE 'panicked|SUMMARY: libFuzzer|deadly signal' "$log"; then
    runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n 1)"
    summary+=("$target: ${runs:-?} executions, no crash")
  else
    status=1
    summary+=("$target: CRASH (input in fuzz/artifacts/$target/; see the log above)")
    tail -n 40 "$log" >&2
  fi
  rm -f "$log"
done
printf '\nfuzz summary\n' >&2
printf '  %s\n' "${summary[@]}" >&2
exit "$status"
