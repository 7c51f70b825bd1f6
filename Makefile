# Fife's entry points. `make test` is what CI runs (.ci/run); `make demo` is the main job.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test fmt-check clippy unit crds crds-check validate-examples deps bench demo run

# The main job: the API test server, synthetic workloads, a real Prometheus and the real
# controller ship one release that is promoted and one that is rolled back.
demo: deps
	$(CARGO) build -q --locked -p fife-cli -p fife-testkit
	target/debug/fife-testkit demo --fife target/debug/fife --repo . --work-dir target/demo

test: deps fmt-check clippy crds-check validate-examples unit

# Installs what the tests need beyond the Rust toolchain (idempotent, package registries only).
deps:
	@scripts/install-deps.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked

# Regenerate crds/*.yaml from the Rust types.
crds:
	@if [ -d crates/fife-api ]; then $(CARGO) run -q --locked -p fife-api --features crdgen --bin crdgen -- crds; fi

# Fails when crds/ does not match the Rust types.
crds-check:
	@if [ -d crates/fife-api ]; then \
	  tmp=$$(mktemp -d) && $(CARGO) run -q --locked -p fife-api --features crdgen --bin crdgen -- "$$tmp" && \
	  diff -ru crds "$$tmp" || { echo "crds/ is out of date: run 'make crds' and commit the result."; exit 1; }; \
	fi

# Every shipped manifest must pass `fife validate` (warnings allowed).
validate-examples:
	@if [ -d crates/fife-api ]; then \
	  $(CARGO) run -q --locked -p fife-cli -- validate $$(find examples -name '*.yaml' -o -name '*.yml' | sort); \
	fi

bench:
	$(CARGO) bench --workspace --locked
	@for s in benches/*.sh; do [ -x "$$s" ] && "$$s"; done; true
