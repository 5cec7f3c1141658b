# shellcheck shell=bash
# Sourced by the bench scripts (after env.sh, with the working directory at $ROOT): a scratch directory,
# timing helpers, and a throw-away Verdaccio on 127.0.0.1 with one user and its token.
#   $work                           a scratch directory, removed (and Verdaccio stopped) on exit
#   step TEXT / now / elapsed T0 T1 a progress line on stderr / a timestamp / seconds between two
#   start_verdaccio LIFETIME        config, storage and log under $work; killed after LIFETIME seconds at
#                                   the latest (bounds its life even if the bench is killed before its
#                                   trap runs). Sets port, registry and verdaccio_pid; exports NPM_TOKEN.
#   write_meta PATH                 PATH.meta with a GUID no other write_meta of this bench gives (the
#                                   publisher fails a package with a missing .meta or a shared GUID)

work="$(mktemp -d)"
verdaccio_pid=""

start_verdaccio() {
  local lifetime="$1"
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
  timeout "$lifetime" node node_modules/verdaccio/bin/verdaccio --config "$work/config.yaml" \
    --listen "127.0.0.1:$port" > "$work/verdaccio.log" 2>&1 &
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
}

cleanup() {
  if [ -n "$verdaccio_pid" ]; then
    kill "$verdaccio_pid" 2>/dev/null || true
    wait "$verdaccio_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '==> %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

meta_count=0
write_meta() {
  meta_count=$((meta_count + 1))
  printf 'fileFormatVersion: 2\nguid: %032x\n' "$meta_count" > "$1.meta"
}
