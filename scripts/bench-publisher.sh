#!/usr/bin/env bash
# Bench (not a test): how long `upm-publisher publish` takes to decide that every package of a
# 109-package repository is already published, next to the sequential `npm view name@version` loop the
# old system ran. Everything runs on 127.0.0.1: a Verdaccio started here and stopped on exit.
# Usage: scripts/bench-publisher.sh [PACKAGES]   (default 109)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

count="${1:-109}"
case "$count" in ''|*[!0-9]*) echo "usage: $0 [PACKAGES]" >&2; exit 2 ;; esac

source "$ROOT/scripts/lib/bench.sh"

step "cargo build --release -p upm-publisher"
cargo build --locked --release -p upm-publisher --quiet
cli="$ROOT/target/release/upm-publisher"

start_verdaccio 1800

step "fixture repository with $count packages"
repo="$work/repo"
mkdir -p "$repo"
git -C "$repo" init -q -b main
for i in $(seq -w 1 "$count"); do
  dir="$repo/Packages/com.bench.package$i"
  mkdir -p "$dir/Runtime"
  printf '{\n  "name": "com.bench.package%s",\n  "version": "1.%s.0",\n  "displayName": "Bench %s",\n  "unity": "2022.3"\n}\n' \
    "$i" "$((10#$i))" "$i" > "$dir/package.json"
  printf 'class Bench%s {}\n' "$i" > "$dir/Runtime/Bench$i.cs"
  for asset in package.json Runtime "Runtime/Bench$i.cs"; do write_meta "$dir/$asset"; done
done
git -C "$repo" add -A
git -C "$repo" -c user.name=bench -c user.email=bench@example.com commit -q -m "feat: $count packages"
sha="$(git -C "$repo" rev-parse HEAD)"

step "publishing them all once (setup, not measured)"
t0="$(now)"
"$cli" publish --registry "$registry" --workspace "$repo" --commit-sha "$sha" --audit-file "$work/first.json" 2>"$work/first.log" \
  || { tail -n 20 "$work/first.log" >&2; exit 1; }
t1="$(now)"
echo "   first publish of $count packages: $(elapsed "$t0" "$t1") s" >&2
git -C "$repo" checkout -q -- . && git -C "$repo" clean -qfd   # drop the written CHANGELOG.md files

step "measuring: upm-publisher publish (all $count already published), best of 3"
best=""
for run in 1 2 3; do
  t0="$(now)"
  "$cli" publish --registry "$registry" --workspace "$repo" --commit-sha "$sha" --audit-file "$work/skip.json" 2>"$work/skip.log"
  t1="$(now)"
  took="$(elapsed "$t0" "$t1")"
  echo "   run $run: $took s" >&2
  if [ -z "$best" ] || awk -v a="$took" -v b="$best" 'BEGIN { exit !(a < b) }'; then best="$took"; fi
done
skipped="$(node -e 'const a=require(process.argv[1]);console.log(a.skipped.length+"/"+(a.skipped.length+a.published.length+a.failed.length))' "$work/skip.json")"
[ "$skipped" = "$count/$count" ] || { echo "expected every package skipped, got $skipped" >&2; exit 1; }

step "measuring: sequential npm view loop (npm $(npm --version 2>/dev/null || echo '?'))"
# Same token as the publisher, a fresh cache, and no user .npmrc: the old loop as it ran in CI.
printf '//127.0.0.1:%s/:_authToken=%s\n' "$port" "$NPM_TOKEN" > "$work/npmrc"
t0="$(now)"
for i in $(seq -w 1 "$count"); do
  npm view "com.bench.package$i@1.$((10#$i)).0" version --registry "$registry" \
    --userconfig "$work/npmrc" --cache "$work/npm-cache" >/dev/null
done
t1="$(now)"
npm_loop="$(elapsed "$t0" "$t1")"

ratio="$(awk -v a="$npm_loop" -v b="$best" 'BEGIN { printf "%.1f", a / b }')"
printf '\n%-44s %8s s\n' "upm-publisher publish ($count skipped, best of 3)" "$best"
printf '%-44s %8s s\n' "sequential npm view loop ($count packages)" "$npm_loop"
printf '%-44s %8sx\n' "speed-up" "$ratio"
