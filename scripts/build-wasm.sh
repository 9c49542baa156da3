#!/usr/bin/env bash
# Builds the keyhop filter as a proxy-wasm module (wasm32-wasip1) and copies it to
# target/keyhop.wasm.
#
# Route 1: a rustup toolchain that has the wasm32-wasip1 standard library installed.
# Route 2 (offline machines): Debian's rustc-web + rust-web-src + wasi-libc, building std
# from source with -Z build-std and linking with the rust-lld that ships in the rustup
# toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
# Always into the repository's target/, whatever CARGO_TARGET_DIR a developer has set.
export CARGO_TARGET_DIR="$PWD/target"
out=target/keyhop.wasm
target=wasm32-wasip1
# Reproducible bytes wherever the checkout and the cargo home are: the Istio manifests pin
# the module's digest, so a clone elsewhere must build the very same module.
remap="--remap-path-prefix=$PWD=/keyhop --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"

if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  RUSTFLAGS="$remap" cargo build -p keyhop-filter --lib --profile wasm --target "$target"
else
  scripts/ensure-tools.sh wasm
  lld="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
  [ -x "$lld" ] || { echo "build-wasm: no rust-lld at $lld" >&2; exit 1; }
  RUSTC_BOOTSTRAP=1 \
  RUSTC=/usr/bin/rustc \
  CARGO_TARGET_WASM32_WASIP1_LINKER="$lld" \
  RUSTFLAGS="-L/usr/lib/wasm32-wasi $remap" \
    /usr/bin/cargo build -p keyhop-filter --lib --profile wasm --target "$target" \
      -Z build-std=std,panic_abort
fi
# Copy, then rename: an Envoy starting meanwhile never reads a half-written module.
cp "target/$target/wasm/keyhop_filter.wasm" "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
printf 'built %s (%s bytes, sha256 %s)\n' "$out" "$(stat -c %s "$out")" "$(sha256sum "$out" | cut -d' ' -f1)"
