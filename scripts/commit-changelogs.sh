#!/usr/bin/env bash
# Commits the CHANGELOG.md sections that `upm-publisher publish` wrote into the package repository's
# checkout, and pushes them to the branch that was pushed. Run by handle-publish-request.yml after the
# publisher; tested by publisher/tests/nets.rs against a local bare repository.
#
#   UPM_WORKSPACE       the package repository's checkout (detached at the published commit)
#   UPM_BRANCH          the branch to push to
#   UPM_PUSH_TOKEN      token allowed to push (the GitHub App's installation token); read by git's
#                       credential helper from the environment, never put on a command line
#   UPM_COMMIT_NAME, UPM_COMMIT_EMAIL   the committer (the App's bot identity)
#   UPM_PUSH_ATTEMPTS   pushes before giving up (default 5)
#
# The message carries `[skip ci]`: the worker ignores such pushes, so the commit cannot start another
# publish, and CI in the package repository skips it. When the branch moved since the published commit
# (a later push, or another publish run committing its own changelog), the commit is rebased onto the
# new head and pushed again. CHANGELOG.md files are merged with git's `union` driver during the rebase:
# two runs that each added a section at the top keep both sections rather than stopping on a conflict.
set -euo pipefail

: "${UPM_WORKSPACE:?}"
if [ -z "${UPM_BRANCH:-}" ]; then
  # A manual replay may not name the branch: there is nowhere to push, which is not a failure.
  echo "commit-changelogs: no branch given; the changelogs are not committed back" >&2
  exit 0
fi
attempts="${UPM_PUSH_ATTEMPTS:-5}"
name="${UPM_COMMIT_NAME:-upm-publisher}"
email="${UPM_COMMIT_EMAIL:-upm-publisher@users.noreply.github.com}"
cd "$UPM_WORKSPACE"

if ! git check-ref-format --branch "$UPM_BRANCH" >/dev/null 2>&1; then
  echo "commit-changelogs: $UPM_BRANCH is not a branch name" >&2
  exit 1
fi

# Only changelogs: nothing else the run may have left in the checkout is ever committed.
mapfile -t changed < <(git status --porcelain=v1 -z --untracked-files=all \
  | tr '\0' '\n' | sed -n 's/^.. //p' | grep -E '(^|/)CHANGELOG\.md$' || true)
if [ ${#changed[@]} -eq 0 ]; then
  echo "commit-changelogs: no changelog to commit" >&2
  exit 0
fi

git_as_bot() {
  git -c user.name="$name" -c user.email="$email" -c commit.gpgsign=false \
    -c credential.helper= \
    -c credential.helper='!f() { echo username=x-access-token; echo "password=${UPM_PUSH_TOKEN:-}"; }; f' \
    "$@"
}

published="$(git rev-parse HEAD)"
git add -- "${changed[@]}"
packages="$(printf '%s\n' "${changed[@]}" | sed 's#/\{0,1\}CHANGELOG\.md$##; s#^$#.#' | paste -sd, -)"
git_as_bot commit --quiet --no-verify \
  -m "chore(changelog): ${packages} [skip ci]" \
  -m "Written by upm-publisher for the versions it published from ${published:0:12}."
echo "commit-changelogs: committed ${changed[*]}" >&2

# Union-merge changelogs while rebasing (a local attribute: the package repository is not changed).
mkdir -p "$(git rev-parse --git-path info)"
echo 'CHANGELOG.md merge=union' >>"$(git rev-parse --git-path info/attributes)"

for attempt in $(seq 1 "$attempts"); do
  if git_as_bot push --quiet origin "HEAD:refs/heads/$UPM_BRANCH"; then
    echo "commit-changelogs: pushed to $UPM_BRANCH (attempt $attempt)" >&2
    exit 0
  fi
  if [ "$attempt" -eq "$attempts" ]; then
    break
  fi
  echo "commit-changelogs: push refused (the branch moved?); rebasing onto $UPM_BRANCH" >&2
  sleep "$attempt"
  git_as_bot fetch --quiet origin "refs/heads/$UPM_BRANCH"
  # A rewritten branch (force push) no longer contains what was published: do not replay history.
  if ! git merge-base --is-ancestor "$published" FETCH_HEAD; then
    echo "commit-changelogs: $UPM_BRANCH no longer contains ${published:0:12}; not committing" >&2
    exit 1
  fi
  if ! git_as_bot rebase --quiet FETCH_HEAD; then
    git rebase --abort || true
    echo "commit-changelogs: cannot rebase the changelog commit onto $UPM_BRANCH" >&2
    exit 1
  fi
done
echo "commit-changelogs: gave up after $attempts pushes" >&2
exit 1
