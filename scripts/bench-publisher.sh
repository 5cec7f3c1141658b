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

work="$(mktemp -d)"
verdaccio_pid=""
cleanup() {
  if [ -n "$verdaccio_pid" ]; then kill "$verdaccio_pid" 2>/dev/null || true; wait "$verdaccio_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '==> %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

step "cargo build --release -p upm-publisher"
cargo build --locked --release -p upm-publisher --quiet
cli="$ROOT/target/release/upm-publisher"

port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
registry="http://127.0.0.1:$port"
cat > "$work/config.yaml" <<YAML
storage: $work/storage
auth:
  htpasswd:
    file: $work/htpasswd
    max_users: 10
uplinks: {}
packages:
  '**':
    access: \$all
    publish: \$authenticated
middlewares:
  audit:
    enabled: false
web:
  enable: false
max_body_size: 100mb
log: { type: stdout, format: pretty, level: warn }
# JWT API tokens: Verdaccio's default (legacy) tokens make it re-check the password with bcrypt on
# every authenticated request, about 90 ms each on its single thread (see publisher/README.md).
security:
  api:
    jwt:
      sign:
        expiresIn: 1d
YAML
step "starting Verdaccio on $registry"
# timeout bounds its life even if this script is killed before its trap runs.
timeout 1800 node node_modules/verdaccio/bin/verdaccio --config "$work/config.yaml" --listen "127.0.0.1:$port" \
  > "$work/verdaccio.log" 2>&1 &
verdaccio_pid=$!
for _ in $(seq 1 300); do
  curl -fsS "$registry/-/ping" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$registry/-/ping" >/dev/null || { cat "$work/verdaccio.log" >&2; exit 1; }
NPM_TOKEN="$(curl -fsS -X PUT -H 'Content-Type: application/json' \
  -d '{"name":"bench","password":"bench-password"}' "$registry/-/user/org.couchdb.user:bench" |
  node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token))')"
export NPM_TOKEN

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
  printf 'fileFormatVersion: 2\n' > "$dir/Runtime/Bench$i.cs.meta"
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
