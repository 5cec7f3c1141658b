# shellcheck shell=bash
# Sourced by every project script: one place for the paths and the offline-friendly settings.
# Safe to source more than once.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT

# Node >= 22.12 comes from the npm package `node` (the system Node may be older); project tools first.
case ":$PATH:" in
  *":$ROOT/node_modules/.bin:"*) ;;
  *) export PATH="$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH" ;;
esac

# worker-build would download wasm-bindgen, wasm-opt and esbuild, which fails on a registry-only machine;
# it honours absolute paths in these variables instead.
WASM_BINDGEN_BIN="$(command -v wasm-bindgen || true)"
export WASM_BINDGEN_BIN
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
# Debian's binaryen (108) cannot parse the module; the npm package binaryen@132 can.
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"

# No telemetry, no calls to Cloudflare's API from local runs, and wrangler's config/cache kept inside the
# project's ignored folders so a machine stays clean.
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export XDG_CONFIG_HOME="$ROOT/.tools/xdg/config"
export XDG_CACHE_HOME="$ROOT/.tools/xdg/cache"
export NO_UPDATE_NOTIFIER=1
export npm_config_update_notifier=false
export npm_config_fund=false
export npm_config_audit=false

# The versions the lock files expect; setup.sh installs exactly these.
export WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' "$ROOT/Cargo.lock")"
export WASM_BINDGEN_VERSION
