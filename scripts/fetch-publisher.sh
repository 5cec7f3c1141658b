#!/usr/bin/env bash
# Fetches the upm-publisher binary that ci.yml built for this workflow's commit, and verifies it before
# the publish job gives it any secret. Run by handle-publish-request.yml and reconcile.yml.
#
#   GITHUB_REPOSITORY, GITHUB_SHA   set by Actions: which repository and commit the binary must come from
#   GH_TOKEN                        the job's token (actions: read, attestations: read)
#   UPM_PUBLISHER_DIR               where to put the binary
#   UPM_PUBLISHER_WAIT              seconds to wait for CI to upload it (default 900): a push to main
#                                   (a registry edit) and a dispatch can arrive together
#   UPM_ATTESTATION                 "required" (default) or "off": build provenance needs a public
#                                   repository or GitHub Enterprise Cloud; "off" keeps the other checks
#
# Checks: the binary comes from a successful-or-running ci.yml run of THIS repository on the default
# branch at exactly GITHUB_SHA (never a pull request's run); its sha256 matches the one ci.yml recorded;
# and (unless off) GitHub's build provenance attestation says ci.yml built these bytes from GITHUB_SHA.
set -euo pipefail

: "${GITHUB_REPOSITORY:?}" "${GITHUB_SHA:?}" "${UPM_PUBLISHER_DIR:?}"
artifact=upm-publisher-linux-x64
wait_seconds="${UPM_PUBLISHER_WAIT:-900}"
attestation="${UPM_ATTESTATION:-required}"
deadline=$((SECONDS + wait_seconds))
mkdir -p "$UPM_PUBLISHER_DIR"

fetched=""
while [ -z "$fetched" ]; do
  # Newest first. Only runs the default branch's own events start: push, the weekly rebuild (artifacts
  # expire after 90 days) and a manual run.
  run_ids="$(gh api "repos/$GITHUB_REPOSITORY/actions/workflows/ci.yml/runs?head_sha=$GITHUB_SHA&per_page=20" \
    --jq '.workflow_runs[]
          | select(.event == "push" or .event == "schedule" or .event == "workflow_dispatch")
          | select(.head_repository.full_name == env.GITHUB_REPOSITORY)
          | select(.conclusion == null or .conclusion == "success")
          | .id')"
  for run_id in $run_ids; do
    if gh run download "$run_id" --repo "$GITHUB_REPOSITORY" --name "$artifact" \
      --dir "$UPM_PUBLISHER_DIR" >/dev/null 2>&1; then
      fetched="$run_id"
      break
    fi
  done
  if [ -z "$fetched" ]; then
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "fetch-publisher: ci.yml has no $artifact for $GITHUB_SHA after ${wait_seconds}s" >&2
      echo "fetch-publisher: run ci.yml on this commit (workflow_dispatch), then replay" >&2
      exit 1
    fi
    echo "fetch-publisher: waiting for ci.yml to build $GITHUB_SHA" >&2
    sleep 20
  fi
done
echo "fetch-publisher: downloaded $artifact from ci.yml run $fetched" >&2

cd "$UPM_PUBLISHER_DIR"
sha256sum --check --strict upm-publisher.sha256
if [ "$attestation" = "off" ]; then
  echo "fetch-publisher: build provenance not checked (UPM_ATTESTATION=off)" >&2
else
  gh attestation verify upm-publisher \
    --repo "$GITHUB_REPOSITORY" \
    --signer-workflow "$GITHUB_REPOSITORY/.github/workflows/ci.yml" \
    --source-digest "$GITHUB_SHA" \
    --deny-self-hosted-runners
fi
chmod +x upm-publisher
./upm-publisher --version
