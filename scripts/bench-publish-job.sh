#!/usr/bin/env bash
# Bench (not a test): the publish job's own steps for one push of a typical package, without runner
# start and without compiling (publisher-binary.yml builds the CLI once per commit). Everything runs on 127.0.0.1:
# a Verdaccio started here and stopped on exit, and a bare git repository standing in for GitHub.
#
# Timed, in the workflow's order:
#   verify     sha256sum --check of the release binary (what fetch-publisher.sh does after downloading;
#              the download and `gh attestation verify` need GitHub and are not measured here)
#   checkout   git clone of the package repository with full history, at the pushed sha
#   publish    upm-publisher publish: lookup, pack, upload, verify, changelog (one new version)
#   commit     scripts/commit-changelogs.sh: commit CHANGELOG.md and push it to the branch
# Usage: scripts/bench-publish-job.sh [FILES]   (files in the package, default 60)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

files="${1:-60}"
case "$files" in ''|*[!0-9]*) echo "usage: $0 [FILES]" >&2; exit 2 ;; esac

source "$ROOT/scripts/lib/bench.sh"

step "cargo build --release -p upm-publisher (setup, not measured: CI does it once per commit)"
cargo build --locked --release -p upm-publisher --quiet
mkdir -p "$work/bin"
cp target/release/upm-publisher "$work/bin/"
(cd "$work/bin" && sha256sum upm-publisher > upm-publisher.sha256)

start_verdaccio 600

step "fixture: a Unity project with one package of $files files, 40 commits of history, 1.0.0 published"
repo="$work/repo"
pkg="$repo/Packages/com.bench.typical"
mkdir -p "$pkg/Runtime" "$pkg/Editor"
gitc() { git -C "$repo" -c user.name=bench -c user.email=bench@example.com "$@"; }
gitc init -q -b main
printf '{"name":"unity-project","private":true}\n' > "$repo/package.json"
write_manifest() {
  printf '{\n  "name": "com.bench.typical",\n  "version": "%s",\n  "displayName": "Typical",\n  "unity": "2022.3",\n  "description": "bench"\n}\n' "$1" > "$pkg/package.json"
}
write_manifest 1.0.0
printf '# Typical\n' > "$pkg/README.md"
printf '# Changelog\n\n## [1.0.0] - 2026-01-01\n\n- first\n' > "$pkg/CHANGELOG.md"
for i in $(seq 1 "$files"); do
  dir="$pkg/Runtime"; [ $((i % 4)) -eq 0 ] && dir="$pkg/Editor"
  head -c 2000 /dev/urandom | base64 > "$dir/File$i.cs"
  write_meta "$dir/File$i.cs"
done
for asset in package.json README.md CHANGELOG.md Runtime Editor; do write_meta "$pkg/$asset"; done
gitc add -A && gitc commit -q -m "feat: typical 1.0.0"
for i in $(seq 1 40); do
  echo "// change $i" >> "$pkg/Runtime/File1.cs"
  gitc commit -q -am "fix: change $i"
done
"$work/bin/upm-publisher" publish --registry "$registry" --workspace "$repo" --commit-sha "$(gitc rev-parse HEAD)" \
  --audit-file "$work/first.json" 2>"$work/first.log" || { tail -n 20 "$work/first.log" >&2; exit 1; }
gitc checkout -q -- .
write_manifest 1.1.0
gitc commit -q -am "feat: typical 1.1.0"
sha="$(gitc rev-parse HEAD)"
git clone -q --bare "$repo" "$work/origin.git"

step "measuring the job's steps"
t0="$(now)"
(cd "$work/bin" && sha256sum --check --strict --quiet upm-publisher.sha256)
t1="$(now)"
git clone -q "file://$work/origin.git" "$work/checkout"
git -C "$work/checkout" checkout -q --detach "$sha"
t2="$(now)"
"$work/bin/upm-publisher" publish --registry "$registry" --workspace "$work/checkout" --commit-sha "$sha" \
  --repository studio/bench --branch main --audit-file "$work/audit.json" 2>"$work/publish.log" \
  || { tail -n 20 "$work/publish.log" >&2; exit 1; }
t3="$(now)"
UPM_WORKSPACE="$work/checkout" UPM_BRANCH=main bash scripts/commit-changelogs.sh 2>"$work/commit.log" \
  || { cat "$work/commit.log" >&2; exit 1; }
t4="$(now)"

published="$(node -e 'const a=require(process.argv[1]);console.log(a.published.map(p=>p.name+"@"+p.version+" ("+p.files+" files, "+p.size+" bytes)").join(", "))' "$work/audit.json")"
[ -n "$published" ] || { echo "nothing was published" >&2; exit 1; }
printf '\npublished %s\n' "$published"
printf '%-44s %8s s\n' "verify (sha256 of the binary)" "$(elapsed "$t0" "$t1")"
printf '%-44s %8s s\n' "checkout (full history, local)" "$(elapsed "$t1" "$t2")"
printf '%-44s %8s s\n' "upm-publisher publish" "$(elapsed "$t2" "$t3")"
printf '%-44s %8s s\n' "commit the changelog back" "$(elapsed "$t3" "$t4")"
printf '%-44s %8s s\n' "total (without download, runner start)" "$(elapsed "$t0" "$t4")"
