#!/usr/bin/env python3
"""Writes the judge's oracle cases: inputs plus the expected judgement computed from the
contract in docs/judge.md with scipy (U, p) and brute force over all pairwise differences
(shift, interval). With R installed it also writes R's wilcox.test(conf.int=TRUE) answers.

Run from anywhere: python3 crates/fife-judge/tests/oracle/generate.py
The JSON it writes is committed; the Rust tests read only the JSON.
"""

import json
import math
import os
import shutil
import subprocess
import tempfile
from fractions import Fraction

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
EPS = np.finfo(float).eps


def u_frequencies(n, m):
    """Counts of rank arrangements by U for n, m distinct values (plain DP, exact ints)."""
    # f[i][j][u]: arrangements of i canary and j baseline values with U = u, built by
    # appending the largest value to either side.
    f = {(0, 0): [1]}
    for total in range(1, n + m + 1):
        for i in range(max(0, total - m), min(n, total) + 1):
            j = total - i
            dist = [0] * (i * j + 1)
            if i > 0:  # largest is canary: it beats all j baseline values
                for u, c in enumerate(f[(i - 1, j)]):
                    dist[u + j] += c
            if j > 0:  # largest is baseline: adds nothing to U
                for u, c in enumerate(f[(i, j - 1)]):
                    dist[u] += c
            f[(i, j)] = dist
    return f[(n, m)]


def qwilcox(p, n, m):
    freqs = u_frequencies(n, m)
    total = sum(freqs)
    cum = 0
    for q, c in enumerate(freqs):
        cum += c
        if cum / total >= p - 10 * EPS:
            return q
    return len(freqs) - 1


def clean(values, nan_policy, outliers):
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    finite = np.isfinite(v)
    v = v[finite] if nan_policy == "remove" else np.where(finite, v, 0.0)
    v = v + 0.0
    if outliers is not None and v.size:
        q1, q3 = np.percentile(v, [25, 75])
        iqr = q3 - q1
        v = v[(v >= q1 - outliers * iqr) & (v <= q3 + outliers * iqr)]
    return np.sort(v)


def expected(canary, baseline, cfg):
    alpha = 1.0 - cfg["confidence"]
    x = clean(canary, cfg["nanPolicy"], cfg.get("outlierFactor"))
    y = clean(baseline, cfg["nanPolicy"], cfg.get("outlierFactor"))
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return {"n_canary": n, "n_baseline": m, "classification": "NoData"}
    N = n * m
    mx, my = float(np.mean(x)), float(np.mean(y))
    effect = None if mx == 0 or my == 0 else mx / my
    pooled = np.concatenate([x, y])
    if np.all(pooled == pooled[0]):
        u, p, method, shift, ci = N / 2, 1.0, "asymptotic", 0.0, [0.0, 0.0]
    else:
        _, counts = np.unique(pooled, return_counts=True)
        ties = bool(np.any(counts > 1))
        method = "exact" if (not ties and n < 50 and m < 50) else "asymptotic"
        res = stats.mannwhitneyu(x, y, alternative="two-sided", use_continuity=True, method=method)
        u, p = float(res.statistic), float(res.pvalue)
        diffs = np.sort((x[:, None] - y[None, :]).ravel())
        shift = float(np.median(diffs))
        if method == "exact":
            k = max(1, qwilcox(alpha / 2, n, m))
        else:
            tie_term = float(np.sum(counts.astype(float) ** 3 - counts))
            sigma = math.sqrt(n * m / 12 * ((n + m + 1) - tie_term / ((n + m) * (n + m - 1))))
            z = stats.norm.ppf(1 - alpha / 2)
            k = min(max(math.ceil(N / 2 - z * sigma - 0.5), 1), N)
        ci = [float(diffs[k - 1]), float(diffs[N - k])]
    cles = u / N

    direction = cfg["direction"]
    watch_up = direction in ("increase", "either")
    watch_down = direction in ("decrease", "either")
    gate_up = effect is None or effect >= cfg["allowedIncrease"]
    gate_down = effect is None or effect <= cfg["allowedDecrease"]
    if cfg["rule"] == "significance":
        sig = p < alpha
        high = watch_up and sig and u > N / 2 and gate_up
        low = watch_down and sig and u < N / 2 and gate_down
    else:
        high = watch_up and ci[0] > 0.25 * abs(shift) and gate_up
        low = watch_down and ci[1] < -0.25 * abs(shift) and gate_down
    classification = "High" if high else "Low" if low else "Pass"
    return {
        "n_canary": n, "n_baseline": m, "u": u, "p_value": p, "method": method,
        "shift": shift, "ci": ci, "effect_size": effect, "cles": cles,
        "classification": classification,
    }


def config(**overrides):
    cfg = {"confidence": 0.95, "direction": "either", "allowedIncrease": 1.0,
           "allowedDecrease": 1.0, "rule": "significance", "nanPolicy": "remove"}
    cfg.update(overrides)
    return cfg


def as_json_list(values):
    return [None if (isinstance(v, float) and math.isnan(v)) else float(v) for v in values]


def cases():
    rng = np.random.default_rng(20261124)
    out = []

    def add(name, canary, baseline, **cfg):
        canary, baseline = as_json_list(canary), as_json_list(baseline)
        c = config(**cfg)
        out.append({"name": name, "canary": canary, "baseline": baseline, "config": c,
                    "expected": expected(canary, baseline, c)})

    # Small, continuous: exact method.
    for n, m, shift in [(3, 4, 0.0), (5, 5, 2.0), (10, 12, 0.5), (20, 15, -1.0), (49, 49, 0.3),
                        (1, 7, 1.0), (30, 8, 0.0)]:
        add(f"exact-{n}x{m}", rng.normal(shift, 1, n), rng.normal(0, 1, m))
    add("exact-90pct", rng.normal(1, 1, 12), rng.normal(0, 1, 14), confidence=0.9)
    add("exact-99pct-increase", rng.normal(12, 1, 25), rng.normal(10, 1, 25), confidence=0.99,
        direction="increase")
    # Large, continuous: asymptotic method, including one above the materialisation limit.
    for n, m, shift in [(50, 49, 0.0), (200, 300, 0.2), (500, 400, -0.3), (1100, 1000, 0.05)]:
        add(f"asymptotic-{n}x{m}", rng.lognormal(shift, 0.5, n), rng.lognormal(0, 0.5, m))
    add("asymptotic-tolerated-increase", rng.normal(110, 5, 300), rng.normal(100, 5, 300),
        allowedIncrease=1.2)
    add("asymptotic-kayenta", rng.normal(105, 5, 300), rng.normal(100, 5, 300), rule="kayenta")
    add("asymptotic-decrease-only", rng.normal(95, 5, 200), rng.normal(100, 5, 200),
        direction="decrease", allowedDecrease=0.97)
    # Heavy ties: few distinct values.
    add("ties-small", rng.integers(0, 4, 10), rng.integers(0, 4, 12))
    add("ties-large", rng.integers(0, 6, 300), rng.integers(1, 6, 250))
    add("ties-large-kayenta", rng.integers(0, 6, 300), rng.integers(1, 6, 250), rule="kayenta")
    add("ties-rounded-latency", np.round(rng.lognormal(0, 0.3, 2000), 1),
        np.round(rng.lognormal(0.02, 0.3, 1500), 1))
    # Zero-inflated error counts: significant, zero shift.
    counts = [1, 2, 1, 3, 1, 2, 1, 1, 4, 2]
    add("zero-inflated-significance", [0] * 40 + counts, [0] * 50)
    add("zero-inflated-kayenta", [0] * 40 + counts, [0] * 50, rule="kayenta")
    # NaN handling.
    with_nan = list(rng.normal(1, 1, 15)) + [math.nan] * 3
    add("nan-removed", with_nan, list(rng.normal(0, 1, 12)) + [math.nan])
    add("nan-as-zero", with_nan, list(rng.normal(0, 1, 12)) + [math.nan], nanPolicy="replaceWithZero")
    add("nan-only-canary", [math.nan, math.nan], [1.0, 2.0])
    # Outliers fenced.
    add("outliers-removed", list(rng.normal(0, 1, 40)) + [25.0, -30.0], rng.normal(0, 1, 40),
        outlierFactor=1.5)
    # Constant and degenerate sizes.
    add("constant", [4.2] * 30, [4.2] * 20)
    add("constant-zero", [0.0] * 5, [0.0] * 5)
    add("singletons-equal", [1.0], [1.0])
    add("singletons-distinct", [2.0], [1.0])
    add("singleton-canary", [5.0], rng.normal(0, 1, 10))
    add("singleton-baseline", rng.normal(0, 1, 10), [5.0])
    add("empty-baseline", [1.0, 2.0], [])
    return out


def r_cases():
    """R's wilcox.test(conf.int = TRUE) on continuous samples, exact and asymptotic."""
    rng = np.random.default_rng(7)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, m, shift, conf in [(8, 9, 1.0, 0.95), (20, 25, 0.5, 0.9), (40, 45, -0.4, 0.99),
                                  (60, 70, 0.3, 0.95), (150, 120, 0.0, 0.95), (400, 500, 0.1, 0.95)]:
            x, y = rng.normal(shift, 1, n), rng.normal(0, 1, m)
            np.savetxt(os.path.join(tmp, "x"), x, fmt="%.17g")
            np.savetxt(os.path.join(tmp, "y"), y, fmt="%.17g")
            script = (
                f'x <- scan("{tmp}/x", quiet=TRUE); y <- scan("{tmp}/y", quiet=TRUE);'
                f"w <- wilcox.test(x, y, conf.int=TRUE, conf.level={conf}, correct=TRUE);"
                'cat(sprintf("%.17g", c(w$p.value, w$estimate, w$conf.int)), sep="\\n")'
            )
            res = subprocess.run(["Rscript", "-e", script], check=True, capture_output=True,
                                 text=True).stdout.split()
            p, estimate, lo, hi = (float(v) for v in res)
            out.append({
                "name": f"r-{n}x{m}", "canary": [float(v) for v in x],
                "baseline": [float(v) for v in y], "config": config(confidence=conf),
                "exact": n < 50 and m < 50,
                "r": {"p_value": p, "estimate": estimate, "ci": [lo, hi]},
            })
    return out


def write(name, data):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    write("scipy_cases.json", cases())
    if shutil.which("Rscript"):
        write("r_cases.json", r_cases())
    else:
        print("Rscript not found: r_cases.json left as it is")
