#!/usr/bin/env bash
# Replays a saved webhook payload to a running worker, signed the way GitHub signs it.
#
#   scripts/replay.sh [PAYLOAD_FILE] [EVENT] [URL]
#
# PAYLOAD_FILE defaults to tests/fixtures/push-package-json.json, EVENT to push, URL to the local
# `scripts/dev.sh` worker (http://127.0.0.1:8787/). The secret comes from WEBHOOK_SECRET, else from
# .dev.vars. Prints the worker's JSON answer; exits non-zero unless the status is 2xx.
#
# It is the same recipe as the README's curl + openssl lines: the signature is the HMAC-SHA256 of the exact
# bytes sent, so the file is posted with --data-binary, never re-serialised.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
payload="${1:-$ROOT/tests/fixtures/push-package-json.json}"
event="${2:-push}"
url="${3:-http://127.0.0.1:8787/}"

if [ -z "${WEBHOOK_SECRET:-}" ] && [ -f "$ROOT/.dev.vars" ]; then
  WEBHOOK_SECRET="$(sed -n 's/^WEBHOOK_SECRET=//p' "$ROOT/.dev.vars" | head -n 1 | sed 's/^"\(.*\)"$/\1/')"
fi
if [ -z "${WEBHOOK_SECRET:-}" ]; then
  echo "replay: set WEBHOOK_SECRET (the webhook's secret; with several, any one of them)" >&2
  exit 2
fi
# With rotation, WEBHOOK_SECRET may hold several secrets: sign with the first.
secret="${WEBHOOK_SECRET%%,*}"

signature="sha256=$(openssl dgst -sha256 -hmac "$secret" < "$payload" | sed 's/^.*= //')"
delivery="${DELIVERY_ID:-$(cat /proc/sys/kernel/random/uuid 2>/dev/null || date +%s%N)}"

exec curl --silent --show-error --fail-with-body --max-time 30 \
  -X POST "$url" \
  -H "Content-Type: application/json" \
  -H "X-GitHub-Event: $event" \
  -H "X-GitHub-Delivery: $delivery" \
  -H "X-Hub-Signature-256: $signature" \
  --data-binary "@$payload"
