#!/usr/bin/env bash
# Fuzzes keyhop-filter's parsers and its whole verify path with libFuzzer + AddressSanitizer.
#
#   scripts/fuzz.sh [seconds-per-target] [target ...]
#
# Targets (filter/fuzz/fuzz_targets): sigfields, digest, config, verify; all of them by default.
# Default 60 s each; `make test` runs 20 s each. Seeds come from filter/fuzz/corpus/<target>
# (read only); what the fuzzer learns goes to $KEYHOP_FUZZ_DIR (default target/fuzz-work), and
# a crash to $KEYHOP_FUZZ_DIR/artifacts/<target>/, with its input, and fails the script.
#
# Toolchain: the stable one. libFuzzer's instrumentation and the sanitizer flag are unstable
# rustc options, so the build sets RUSTC_BOOTSTRAP=1 for this crate only; the flags are the
# ones cargo-fuzz passes, so `cargo fuzz run <target> --fuzz-dir filter/fuzz` finds the same
# bugs where cargo-fuzz is installed. The fuzz crate is not part of the workspace.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(sigfields digest config verify)
fi

host=$(rustc -vV | sed -n 's/^host: //p')
target_dir=${CARGO_TARGET_DIR:-$root/target}/fuzz-build
work=${KEYHOP_FUZZ_DIR:-$root/target/fuzz-work}
mkdir -p "$work"

flags=(
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  --cfg fuzzing
  -Zsanitizer=address
  -Cdebug-assertions
  -Coverflow-checks
  -Cforce-frame-pointers
)

echo "fuzz: building ${targets[*]} (release, ASan, $host) into $target_dir"
# --target keeps the flags off build scripts and proc macros, as cargo-fuzz does.
(
  cd filter/fuzz
  RUSTC_BOOTSTRAP=1 RUSTFLAGS="${flags[*]}" CARGO_TARGET_DIR="$target_dir" \
    cargo build --release --target "$host" --bins
)

summary=()
status=0
for t in "${targets[@]}"; do
  bin=$target_dir/$host/release/$t
  corpus=$work/corpus/$t
  artifacts=$work/artifacts/$t/
  mkdir -p "$corpus" "$artifacts"
  log=$work/$t.log
  echo "fuzz: $t for ${seconds}s (log $log)"
  if "$bin" "$corpus" "$root/filter/fuzz/corpus/$t" \
      -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log and $artifacts)"
    status=1
    tail -40 "$log"
  fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  summary+=("$(printf '%-10s %12s execs  coverage %6s  %s' "$t" "${execs:-?}" "${cov:-?}" "$result")")
done

echo
echo "fuzz summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
