#!/usr/bin/env bash
# verify ÷ one HMAC inside V8: builds filter/examples/ratio.rs for wasm32-wasip1 with the
# module's own build settings (scripts/build-wasm.sh) and runs it under Node.js's WASI, the
# Wasm engine Envoy also embeds.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "wasm-ratio: needs node (Node.js 20 or later)" >&2; exit 1; }
wasm="$(scripts/build-wasm.sh --example ratio)"
exec node --no-warnings scripts/wasm-ratio.mjs "$wasm"
