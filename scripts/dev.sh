#!/usr/bin/env bash
# Sets up everything, then runs the worker locally under `wrangler dev` on http://127.0.0.1:8787:
# local KV seeded from the test registry tests/fixtures/registry.json (it registers the repository of
# scripts/replay.sh's push), dispatches logged instead of sent (DRY_RUN=true).
#
#   scripts/dev.sh                  # then, in another terminal: scripts/replay.sh
#   REGISTRY_SEED=config/repositories.json scripts/dev.sh   # seed the studio's real registry instead
#   DRY_RUN=false scripts/dev.sh    # really dispatch (needs GITHUB_TOKEN in .dev.vars)
#   PORT=9000 scripts/dev.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh

port="${PORT:-8787}"

# Local secrets live in .dev.vars (git-ignored). A development secret is made on first run.
if [ ! -f .dev.vars ]; then
  cat > .dev.vars <<VARS
# Local secrets for \`wrangler dev\` (git-ignored). scripts/replay.sh signs with WEBHOOK_SECRET.
WEBHOOK_SECRET=dev-secret-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
# curl -H "Authorization: Bearer \$HEALTH_TOKEN" http://127.0.0.1:8787/health shows the details.
HEALTH_TOKEN=dev-health-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
# GITHUB_TOKEN=ghp_...   (only needed with DRY_RUN=false)
VARS
  echo "dev: wrote .dev.vars with a fresh local WEBHOOK_SECRET" >&2
fi

# Seed the local KV with a registry file. Locally the seeded copy is the registry: the TTL below keeps
# the worker from asking GitHub for config/repositories.json (edit the file and rerun to reseed).
# The key names the copy's source (src/registry.rs, kv_key): registry:v1:<dispatch repo, lower-case>:<path>.
toml_var() { sed -n "s/^$1 = \"\(.*\)\"\$/\1/p" wrangler.toml; }
dispatch_repo="$(toml_var DISPATCH_REPO)"
registry_path="$(toml_var REGISTRY_PATH)"
registry_key="registry:v1:${dispatch_repo,,}:${registry_path:-config/repositories.json}"
registry_seed="${REGISTRY_SEED:-tests/fixtures/registry.json}"
node scripts/registry-kv-value.mjs "$registry_seed" > .wrangler-registry-seed.json
trap 'rm -f .wrangler-registry-seed.json' EXIT
wrangler kv key put "$registry_key" --binding REGISTRY --local --path .wrangler-registry-seed.json >/dev/null
rm -f .wrangler-registry-seed.json
echo "dev: seeded local KV with $(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1],"utf8")).repositories.length)' "$registry_seed") registry entries from $registry_seed" >&2

# Faster local builds: skip wasm-opt (see scripts/build-worker.sh).
export UPM_BUILD_PROFILE=dev
echo "dev: starting on http://127.0.0.1:$port — try: scripts/replay.sh" >&2
exec wrangler dev --local --ip 127.0.0.1 --port "$port" --show-interactive-dev-session=false \
  --var "DRY_RUN:${DRY_RUN:-true}" --var "REGISTRY_TTL_SECONDS:31536000"
