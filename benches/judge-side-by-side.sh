#!/usr/bin/env bash
# Times, on the same sample files, `fife judge` as a whole process (full judgement: U, p,
# Hodges-Lehmann shift and interval, classification, including reading both files), scipy's
# mannwhitneyu (p-value only) in process (time.perf_counter around the call, without
# interpreter start-up and file reading) and as a whole process, and R's
# wilcox.test(conf.int = TRUE), for n = m from 10³ to 10⁶, on two kinds of data: values at
# full precision as Prometheus returns them (%.17g, no ties) and values rounded to 0.01
# (heavy ties). Prints a Markdown table. Compare the fife / scipy ratios of one run: on a
# shared machine absolute times move from run to run.
#
# Needs python3 with numpy/scipy (FIFE_BENCH_DEPS=1 scripts/install-deps.sh), and Rscript
# unless R_MAX_SIZE=0. SIZES, KINDS, RUNS, R_TIMEOUT (seconds per R run) and R_MAX_SIZE may
# be set. R is run once per size and skipped above R_MAX_SIZE (default 10⁵): at 10⁵ it
# already takes tens of seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"1000 10000 100000 1000000"}
KINDS=${KINDS:-"full rounded"}
RUNS=${RUNS:-3}
R_TIMEOUT=${R_TIMEOUT:-300}
R_MAX_SIZE=${R_MAX_SIZE:-100000}

tools=(python3)
[ "$R_MAX_SIZE" -gt 0 ] && tools+=(Rscript)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "$tool not found: run FIFE_BENCH_DEPS=1 scripts/install-deps.sh, or set R_MAX_SIZE=0" >&2; exit 1; }
done
cargo build --release --locked -q -p fife-cli
fife=target/release/fife
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT

# Latency-like samples (ms), canary 1% slower: at full precision as Prometheus returns them
# (%.17g), and rounded to 0.01 as some exporters report them.
python3 - "$data" $SIZES <<'PY'
import sys, numpy as np
out, sizes = sys.argv[1], [int(s) for s in sys.argv[2:]]
rng = np.random.default_rng(1124)
for n in sizes:
    for role, scale in (("canary", 1.01), ("baseline", 1.0)):
        v = rng.lognormal(np.log(100 * scale), 0.4, n)
        np.savetxt(f"{out}/{role}-full-{n}.txt", v, fmt="%.17g")
        np.savetxt(f"{out}/{role}-rounded-{n}.txt", np.round(v, 2), fmt="%.2f")
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

# Best time (s) of $RUNS calls of mannwhitneyu in one interpreter, the files already read.
scipy_in_process() {
  python3 -c "
import sys, time, numpy as np
from scipy.stats import mannwhitneyu
x, y = np.loadtxt(sys.argv[1]), np.loadtxt(sys.argv[2])
best = float('inf')
for _ in range(int(sys.argv[3])):
    t0 = time.perf_counter()
    mannwhitneyu(x, y, alternative='two-sided').pvalue
    best = min(best, time.perf_counter() - t0)
print(f'{best:.4f}')" "$1" "$2" "$RUNS"
}

ratio() { if [ "$2" = timeout ] || [ "$2" = skipped ]; then echo "–"; else printf '%.1f×' "$(echo "$2 / $1" | bc -l)"; fi; }

echo "| data | n = m | fife judge (whole process, full) | scipy mannwhitneyu in process (p only) | scipy whole process | R wilcox.test(conf.int=TRUE) | fife / scipy in process | R / fife |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for kind in $KINDS; do
  for n in $SIZES; do
    c="$data/canary-$kind-$n.txt"; b="$data/baseline-$kind-$n.txt"
    t_fife=$(best_of 600 "$fife" judge --canary "$c" --baseline "$b" --output json)
    t_scipy_in=$(scipy_in_process "$c" "$b")
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
    fife_vs_scipy=$(printf '%.2f' "$(echo "$t_fife / $t_scipy_in" | bc -l)")
    echo "| $kind | $n | $t_fife | $t_scipy_in | $t_scipy | $t_r_cell | $fife_vs_scipy | $(ratio "$t_fife" "$t_r") |"
  done
done
