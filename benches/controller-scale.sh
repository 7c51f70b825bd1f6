#!/usr/bin/env bash
# Controller at scale: the real `fife controller` (release build) against the Kubernetes API
# test server (release build, its own process) with N Rollouts, each deployed and then given
# a new image that walks setWeight 50 → pause 1s → setWeight 100. Prints Markdown tables for
# docs/BENCHMARKS.md "Controller at scale". Not part of `make test`; `make bench` runs it.
#
# Knobs (environment):
#   SIZES=1000,10000        Rollouts per run
#   CONCURRENCIES=4,16      `fife controller --concurrency` values (4 is the default)
#   IDLE_SECONDS=30         how long the settled controller's reconcile counter is watched
#   PHASE_TIMEOUT_SECONDS=1800  give up waiting for one phase after this long
#   SOAK_SECONDS=0          then change every image, round after round, this long, and
#                           compare the controller's VmRSS early and late (1800: the soak of
#                           docs/BENCHMARKS.md, `SIZES=1000 CONCURRENCIES=4 SOAK_SECONDS=1800`)
#   WORK_DIR=target/controller-scale  kubeconfigs, audit logs and controller logs per run
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked -q -p fife-cli --bin fife
cargo build --release --locked -q -p fife-testkit --bin fife-testkit --example controller_scale

target="${CARGO_TARGET_DIR:-target}/release"
echo "controller-scale: $(date -u +%F), nproc=$(nproc), $(lscpu | sed -n 's/^Model name: *//p')" >&2
FIFE="$target/fife" FIFE_TESTKIT="$target/fife-testkit" CRDS=crds \
  "$target/examples/controller_scale"
