#!/usr/bin/env bash
# Times, as whole processes on the same sample files, `fife judge` (full judgement: U, p,
# Hodges-Lehmann shift and interval, classification), scipy's mannwhitneyu (p-value only)
# and R's wilcox.test(conf.int = TRUE), for n = m from 10³ to 10⁶. Prints a Markdown table.
#
# Needs python3 with numpy/scipy and Rscript (FIFE_BENCH_DEPS=1 scripts/install-deps.sh).
# SIZES, RUNS, R_TIMEOUT (seconds per R run) and R_MAX_SIZE may be set. R is run once per
# size and skipped above R_MAX_SIZE (default 10⁵): at 10⁵ it already takes tens of seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"1000 10000 100000 1000000"}
RUNS=${RUNS:-3}
R_TIMEOUT=${R_TIMEOUT:-300}
R_MAX_SIZE=${R_MAX_SIZE:-100000}

for tool in python3 Rscript; do
  command -v "$tool" >/dev/null || { echo "$tool not found: run FIFE_BENCH_DEPS=1 scripts/install-deps.sh" >&2; exit 1; }
done
cargo build --release --locked -q -p fife-cli
fife=target/release/fife
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT

# Latency-like samples (ms, rounded to 0.01 as exporters report them): canary 1% slower.
python3 - "$data" $SIZES <<'PY'
import sys, numpy as np
out, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
rng = np.random.default_rng(1124)
for n in sizes:
    for role, scale in (("canary", 1.01), ("baseline", 1.0)):
        v = np.round(rng.lognormal(np.log(100 * scale), 0.4, n), 2)
        np.savetxt(f"{out}/{role}-{n}.txt", v, fmt="%.2f")
PY

# Best wall time (s) of $RUNS runs of the command; "timeout" if one exceeds the limit.
best_of() {
  local limit=$1; shift
  local best="" t0 t1 t
  for _ in $(seq "$RUNS"); do
    t0=$(date +%s.%N)
    if ! timeout "$limit" "$@" >/dev/null 2>&1; then echo timeout; return; fi
    t1=$(date +%s.%N)
    t=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
  done
  printf '%.3f' "$best"
}

ratio() { if [ "$2" = timeout ] || [ "$2" = skipped ]; then echo "–"; else printf '%.1f×' "$(echo "$2 / $1" | bc -l)"; fi; }

echo "| n = m | fife judge (full) | scipy mannwhitneyu (p only) | R wilcox.test(conf.int=TRUE) | scipy / fife | R / fife |"
echo "|---:|---:|---:|---:|---:|---:|"
for n in $SIZES; do
  c="$data/canary-$n.txt"; b="$data/baseline-$n.txt"
  t_fife=$(best_of 600 "$fife" judge --canary "$c" --baseline "$b" --output json)
  t_scipy=$(best_of 600 python3 -c "
import sys, numpy as np
from scipy.stats import mannwhitneyu
x, y = np.loadtxt(sys.argv[1]), np.loadtxt(sys.argv[2])
print(mannwhitneyu(x, y, alternative='two-sided').pvalue)" "$c" "$b")
  if [ "$n" -le "$R_MAX_SIZE" ]; then
    t_r=$(RUNS=1 best_of "$R_TIMEOUT" Rscript -e "
a <- commandArgs(TRUE); x <- scan(a[1], quiet=TRUE); y <- scan(a[2], quiet=TRUE)
w <- wilcox.test(x, y, conf.int=TRUE); cat(w\$p.value, w\$estimate, w\$conf.int, '\n')" "$c" "$b")
  else
    t_r=skipped
  fi
  [ "$t_r" = timeout ] && t_r_cell="> ${R_TIMEOUT} (stopped)" || t_r_cell=$t_r
  echo "| $n | $t_fife | $t_scipy | $t_r_cell | $(ratio "$t_fife" "$t_scipy") | $(ratio "$t_fife" "$t_r") |"
done
