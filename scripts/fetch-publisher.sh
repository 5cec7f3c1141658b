#!/usr/bin/env bash
# Fetches the upm-publisher binary that publisher-binary.yml built for this workflow's commit, and verifies
# it before the publish job gives it any secret. Run by handle-publish-request.yml and reconcile.yml.
#
#   GITHUB_REPOSITORY, GITHUB_SHA   set by Actions: which repository and commit the binary must come from
#   GITHUB_REF                      set by Actions: the ref this run is on
#   UPM_DEFAULT_BRANCH              the repository's default branch (github.event.repository.default_branch;
#                                   empty on a schedule, which always runs there)
#   GH_TOKEN                        the job's token (actions: read, attestations: read)
#   UPM_PUBLISHER_DIR               where to put the binary
#   UPM_PUBLISHER_WAIT              seconds to wait for the build to finish (default 900): a push to the
#                                   default branch (a registry edit) and a dispatch can arrive together
#   UPM_ATTESTATION                 "required" (default) or "off": build provenance needs a public
#                                   repository or GitHub Enterprise Cloud; "off" keeps the other checks
#
# Checks: the binary comes from a successful publisher-binary.yml run of THIS repository, started by the
# default branch's own events, at exactly GITHUB_SHA (never a pull request's run); its sha256 matches the
# one the build recorded; and (unless off) GitHub's build provenance attestation says publisher-binary.yml
# built these bytes from GITHUB_SHA.
#
# Cost: one request per look at the runs; the waits between looks grow from 20 s to 60 s, so a job that
# waits the whole 15 minutes makes about 20 requests (a job token allows 1,000 an hour), and it downloads
# only from a finished, successful run.
set -euo pipefail

: "${GITHUB_REPOSITORY:?}" "${GITHUB_SHA:?}" "${UPM_PUBLISHER_DIR:?}"
workflow=publisher-binary.yml
artifact=upm-publisher-linux-x64
wait_seconds="${UPM_PUBLISHER_WAIT:-900}"
attestation="${UPM_ATTESTATION:-required}"
deadline=$((SECONDS + wait_seconds))
mkdir -p "$UPM_PUBLISHER_DIR"

# publisher-binary.yml builds only the default branch's commits: a manual run started from another branch
# would wait for a binary that is never built.
if [ -n "${UPM_DEFAULT_BRANCH:-}" ] && [ -n "${GITHUB_REF:-}" ] \
  && [ "$GITHUB_REF" != "refs/heads/$UPM_DEFAULT_BRANCH" ]; then
  echo "fetch-publisher: this run is on $GITHUB_REF; the publisher is built for the default branch" \
    "($UPM_DEFAULT_BRANCH) only: start the workflow from $UPM_DEFAULT_BRANCH" >&2
  exit 1
fi

fetched=""
pause=20
while [ -z "$fetched" ]; do
  # Newest first, as "<id> <status> <conclusion>". Only runs that the default branch's own events start:
  # push, the weekly rebuild (artifacts expire after 90 days) and a manual run.
  runs="$(gh api "repos/$GITHUB_REPOSITORY/actions/workflows/$workflow/runs?head_sha=$GITHUB_SHA&per_page=20" \
    --jq '.workflow_runs[]
          | select(.event == "push" or .event == "schedule" or .event == "workflow_dispatch")
          | select(.head_repository.full_name == env.GITHUB_REPOSITORY)
          | "\(.id) \(.status) \(.conclusion // "none")"')"
  building=0
  while read -r run_id status conclusion; do
    [ -n "$run_id" ] || continue
    if [ "$status" != completed ]; then
      building=1
    elif [ "$conclusion" = success ] && gh run download "$run_id" --repo "$GITHUB_REPOSITORY" \
      --name "$artifact" --dir "$UPM_PUBLISHER_DIR" >/dev/null 2>&1; then
      fetched="$run_id"
      break
    fi
  done <<<"$runs"
  [ -z "$fetched" ] || break
  if [ -n "$runs" ] && [ "$building" -eq 0 ]; then
    # Every build of this commit has ended and none left a binary: waiting cannot help.
    echo "fetch-publisher: $workflow built no $artifact for $GITHUB_SHA (runs: $(tr '\n' ' ' <<<"$runs"))" >&2
    echo "fetch-publisher: re-run $workflow on this commit, then replay" >&2
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "fetch-publisher: $workflow has no $artifact for $GITHUB_SHA after ${wait_seconds}s" >&2
    echo "fetch-publisher: run $workflow on this commit (workflow_dispatch), then replay" >&2
    exit 1
  fi
  echo "fetch-publisher: waiting ${pause}s for $workflow to build $GITHUB_SHA" >&2
  sleep "$pause"
  pause=$((pause * 3 / 2 > 60 ? 60 : pause * 3 / 2))
done
echo "fetch-publisher: downloaded $artifact from $workflow run $fetched" >&2

cd "$UPM_PUBLISHER_DIR"
sha256sum --check --strict upm-publisher.sha256
if [ "$attestation" = "off" ]; then
  echo "fetch-publisher: build provenance not checked (UPM_ATTESTATION=off)" >&2
else
  gh attestation verify upm-publisher \
    --repo "$GITHUB_REPOSITORY" \
    --signer-workflow "$GITHUB_REPOSITORY/.github/workflows/$workflow" \
    --source-digest "$GITHUB_SHA" \
    --deny-self-hosted-runners
fi
chmod +x upm-publisher
./upm-publisher --version
