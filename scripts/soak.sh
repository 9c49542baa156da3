#!/usr/bin/env bash
# Steady signed load through the demo (portal Envoy signs, partner Envoy verifies) for a set
# time, with a table of the partner's memory over time (process RSS, Envoy heap where the
# replay cache's shared data lives, Wasm linear memory). Fails if a call is refused or memory
# grows after warm-up.
#
#   scripts/soak.sh [seconds (120)] [requests per second (200)] [sample every N s (10)]
#
# Needs Envoy and the module: KEYHOP_ENVOY, KEYHOP_WASM (the Makefile sets both).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release -p keyhop-e2e --bin keyhop-soak -- "$@"
