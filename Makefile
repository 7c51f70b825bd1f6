# Fife's entry points. `make test` is what CI runs (.ci/run); `make demo` is the main job.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test fmt-check clippy unit crds crds-check api-docs api-docs-check alerts-check validate-examples deps bench demo run install image image-check

# The main job: the API test server, synthetic workloads, a real Prometheus and the real
# controller ship one release that is promoted and one that is rolled back.
demo: deps
	$(CARGO) build -q --locked -p fife-cli -p fife-demo
	target/debug/fife-demo --fife target/debug/fife --repo . --work-dir target/demo

test: deps fmt-check clippy crds-check api-docs-check alerts-check validate-examples unit image-check

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

# Regenerate docs/reference/api.md (every field, type, default and constraint) from the CRDs.
api-docs:
	$(CARGO) run -q --locked -p fife-api --features crdgen --bin apidocs -- docs/reference/api.md

# Fails when docs/reference/api.md does not match the CRDs; also runs the generator's tests,
# which `unit` skips because the generator needs the `crdgen` feature.
api-docs-check:
	$(CARGO) test -q --locked -p fife-api --features crdgen --bin apidocs
	@tmp=$$(mktemp) && $(CARGO) run -q --locked -p fife-api --features crdgen --bin apidocs -- "$$tmp" && \
	  { diff -u docs/reference/api.md "$$tmp" && rm -f "$$tmp"; } || \
	  { rm -f "$$tmp"; echo "docs/reference/api.md is out of date: run 'make api-docs' and commit the result."; exit 1; }

# The shipped alert rules must load in Prometheus, pass their unit tests, and the
# PrometheusRule must hold the same rules as the plain rules file.
alerts-check:
	@scripts/check-alerts.sh

# Every shipped manifest must pass `fife validate` (warnings allowed).
validate-examples:
	@if [ -d crates/fife-api ]; then \
	  $(CARGO) run -q --locked -p fife-cli -- validate $$(find examples -name '*.yaml' -o -name '*.yml' | sort); \
	fi

bench:
	$(CARGO) bench --workspace --locked
	@for s in benches/*.sh; do [ -x "$$s" ] && "$$s"; done; true

# Installs the CLI as `fife` and as `kubectl-fife`, so `kubectl fife get rollout X` works
# with $(PREFIX)/bin on PATH. `make install PROFILE=dev` skips the optimised build.
PREFIX ?= $(HOME)/.local
PROFILE ?= release
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
PROFILE_DIR := $(if $(filter dev,$(PROFILE)),debug,$(PROFILE))

install:
	$(CARGO) build --locked --profile $(PROFILE) -p fife-cli --bin fife
	install -d "$(PREFIX)/bin"
	install -m 0755 "$(TARGET_DIR)/$(PROFILE_DIR)/fife" "$(PREFIX)/bin/fife"
	install -m 0755 "$(TARGET_DIR)/$(PROFILE_DIR)/fife" "$(PREFIX)/bin/kubectl-fife"
	@echo "installed fife and kubectl-fife in $(PREFIX)/bin"

# The container image (Containerfile, scripts/build-image.sh; docs/getting-started.md): the
# `fife` binary on no base image, the same digest from the same source, written as an OCI
# layout to target/image/oci, with an overlay of examples/install pinned to its digest in
# target/image/install. The last line printed is NAME@sha256:…
#   make image PUSH=registry.example.com/fife       also push it (registry login: skopeo login)
#   make image PUSH=127.0.0.1:5000/fife PUSH_TLS_VERIFY=false    a plain-HTTP registry
#   make image OVERLAY_IMAGE=NAME                   the name the cluster pulls, if not PUSH's
#   make image PROFILE=dev                          from the debug build: quicker, larger
IMAGE_NAME ?= localhost/fife
PUSH ?=
PUSH_TLS_VERIFY ?= true
OVERLAY_IMAGE ?=

image:
	$(CARGO) build --locked --profile $(PROFILE) -p fife-cli --bin fife
	@scripts/build-image.sh --binary "$(TARGET_DIR)/$(PROFILE_DIR)/fife" --name "$(IMAGE_NAME)" \
	  $(if $(PUSH),--push "$(PUSH)" --tls-verify=$(PUSH_TLS_VERIFY)) \
	  $(if $(OVERLAY_IMAGE),--overlay-name "$(OVERLAY_IMAGE)")

# Builds the image from the dev build, pushes it to a local registry, pulls it back by digest,
# runs the binary inside, builds it again for the same digest, and applies the overlay to the
# API test server (scripts/check-image.sh).
image-check: deps
	$(CARGO) build -q --locked -p fife-cli -p fife-testkit
	@scripts/check-image.sh
