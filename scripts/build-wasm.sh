#!/usr/bin/env bash
# Builds the keyhop filter as a proxy-wasm module (wasm32-wasip1) into target/keyhop.wasm.
# `scripts/build-wasm.sh --example NAME` builds filter/examples/NAME.rs the same way instead
# and prints the path of its .wasm (scripts/wasm-ratio.sh uses this).
#
# Route 1: a rustup toolchain that has the wasm32-wasip1 standard library installed.
# Route 2 (offline machines): Debian's rustc-web + rust-web-src + wasi-libc, building std
# from source with -Z build-std and linking with the rust-lld that ships in the rustup
# toolchain. Route 2 also builds std with panic=immediate-abort (a panic traps at once, with
# no message: the filter is written not to panic, and Envoy logs the trap), which route 1's
# prebuilt std cannot do; route 2 is the build the Istio pins and docs/BENCHMARKS.md describe.
#
# Then `wasm-opt -Oz` (binaryen) shrinks the module; see docs/BENCHMARKS.md, "Module size".
set -euo pipefail
cd "$(dirname "$0")/.."
# Always into the repository's target/, whatever CARGO_TARGET_DIR a developer has set.
export CARGO_TARGET_DIR="$PWD/target"
target=wasm32-wasip1
what=(--lib)
built="target/$target/wasm/keyhop_filter.wasm"
out=target/keyhop.wasm
if [ "${1:-}" = "--example" ]; then
  what=(--example "$2")
  built="target/$target/wasm/examples/$2.wasm"
  out="target/$2.wasm"
fi
# Reproducible bytes wherever the checkout and the cargo home are: the Istio manifests pin
# the module's digest, so a clone elsewhere must build the very same module.
remap="--remap-path-prefix=$PWD=/keyhop --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"

if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  RUSTFLAGS="$remap" cargo build -q -p keyhop-filter "${what[@]}" --profile wasm --target "$target"
else
  scripts/ensure-tools.sh wasm
  lld="$(rustc --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
  [ -x "$lld" ] || { echo "build-wasm: no rust-lld at $lld" >&2; exit 1; }
  RUSTC_BOOTSTRAP=1 \
  RUSTC=/usr/bin/rustc \
  CARGO_TARGET_WASM32_WASIP1_LINKER="$lld" \
  RUSTFLAGS="-L/usr/lib/wasm32-wasi $remap -Zunstable-options -Cpanic=immediate-abort" \
    /usr/bin/cargo build -q -p keyhop-filter "${what[@]}" --profile wasm --target "$target" \
      -Z build-std=std,panic_abort
fi

# The features the module uses, as rustc emits them; wasm-opt must not add others.
features="--enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int"
tmp="$out.tmp.$$"
if command -v wasm-opt >/dev/null 2>&1; then
  wasm-opt -Oz $features "$built" -o "$tmp"
else
  echo "build-wasm: wasm-opt (binaryen) not found; the module is larger than it need be" >&2
  cp "$built" "$tmp"
fi
# Rename last: an Envoy starting meanwhile never reads a half-written module.
mv -f "$tmp" "$out"
if [ "$out" = target/keyhop.wasm ]; then
  printf 'built %s (%s bytes, sha256 %s)\n' "$out" "$(stat -c %s "$out")" "$(sha256sum "$out" | cut -d' ' -f1)"
else
  echo "$out"
fi
