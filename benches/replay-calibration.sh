#!/usr/bin/env bash
# Rollout-level calibration in batches: runs the replay_calibration example (see its doc
# comment for the model and the flags) over rollouts 0..ROLLOUTS in batches of BATCH, each
# batch with its own Prometheus, and prints one Markdown table that adds the batches up:
# per cell, rolled back / replayed with the 95% Wilson interval. A query's cost grows with
# everything one Prometheus holds: one run of 1000 rollouts had answered 40% of its
# queries after 16 minutes, where five batches of 200 finish in about 15 (3 pods a side).
#
#   ROLLOUTS=1000 BATCH=200 benches/replay-calibration.sh --pods 3 --stable 3 --phi 0.8 \
#       --test pods --rules significance --canaries identical
#
# Every other flag goes to each batch as given. The per-batch tables and timings are kept
# in OUT (default target/replay-calibration). FIRST (default 0) starts at another rollout:
# rollouts 1000 and up have seeds of their own, so a second run can add to a first.
set -euo pipefail
cd "$(dirname "$0")/.."

FIRST=${FIRST:-0}
ROLLOUTS=${ROLLOUTS:-1000}
BATCH=${BATCH:-200}
OUT=${OUT:-target/replay-calibration}
mkdir -p "$OUT"
cargo build --release --locked -q -p fife-testkit --example replay_calibration
bin=target/release/examples/replay_calibration

tables=()
for ((first = FIRST; first < FIRST + ROLLOUTS; first += BATCH)); do
  count=$((FIRST + ROLLOUTS - first < BATCH ? FIRST + ROLLOUTS - first : BATCH))
  table="$OUT/batch-$first.md"
  "$bin" --rollouts "$count" --first-rollout "$first" "$@" >"$table" 2>"$OUT/batch-$first.err"
  echo "rollouts $first..$((first + count)): $(tail -n 1 "$OUT/batch-$first.err")" >&2
  tables+=("$table")
done

"$bin" --merge "${tables[@]}"
