#!/usr/bin/env python3
"""Writes the oracle for the counts test from scipy's published pieces; the judge's
statistic has no single published counterpart (a quasi-binomial score test with the pod
as the cluster), so each piece is checked against the implementation that defines it:

- the dispersion φ: per group, Pearson's statistic of the errors/non-errors × pods table
  equals Σ (e_i − n_i p̂)² / (n_i p̂ (1 − p̂)), so φ = Σ_g chi2_contingency(table_g) / df;
- the score statistic: the Pearson chi-square of the 2 × 2 table of canary and baseline
  totals (prop.test without continuity correction), so t = sign(D) √(X² / φ), and the
  p-value is scipy.stats.t's tail at df;
- one canary pod: the prediction t test of its log error ratio among the baseline
  version's pods is scipy's pooled two-sample t test of the one value against the others.

Every pod holds its (errors, requests) at each of POINTS timestamps, so its sums are
POINTS times them. Run from anywhere: python3 crates/fife-judge/tests/oracle/generate_counts.py
The JSON it writes is committed; the Rust tests read only the JSON.
"""

import json
import math
import os

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
POINTS = 4

CASES = [
    # name, direction, canary, baseline, stable: (errors, requests) per pod per timestamp
    ("three a side, no stable", "increase",
     [(6, 1500), (9, 1480), (7, 1530)], [(5, 1510), (4, 1490), (6, 1505)], []),
    ("three a side and three stable", "increase",
     [(12, 1500), (9, 1480), (14, 1530)], [(5, 1510), (7, 1490), (6, 1505)],
     [(6, 1500), (5, 1520), (8, 1470)]),
    ("two a side, either direction", "either",
     [(3, 900), (2, 950)], [(6, 910), (8, 940)], [(7, 930)]),
    ("unequal traffic, decrease", "decrease",
     [(1, 300), (2, 700), (0, 200)], [(4, 320), (9, 650), (2, 210)], []),
    ("baseline without errors", "increase",
     [(2, 800), (3, 820)], [(0, 790), (0, 810)], [(0, 805)]),
    ("one canary pod, one baseline, three stable", "increase",
     [(11, 1500)], [(6, 1510)], [(5, 1490), (7, 1520), (6, 1480)]),
    ("one canary pod, three a side of the baseline's version", "either",
     [(4, 1200)], [(6, 1210), (5, 1190), (7, 1220)], [(6, 1180)]),
    ("one canary pod, a stable pod without errors", "increase",
     [(9, 1500)], [(5, 1510), (6, 1490)], [(0, 1500)]),
]


def totals(pods):
    return sum(e for e, _ in pods) * POINTS, sum(n for _, n in pods) * POINTS


def pearson(pods):
    """Pearson's statistic of one group's errors/non-errors × pods table (0 for one pod or
    a group without errors, whose pods all sit at its ratio)."""
    if len(pods) < 2 or totals(pods)[0] == 0:
        return 0.0
    table = np.array([[e * POINTS for e, _ in pods], [(n - e) * POINTS for e, n in pods]])
    return float(stats.chi2_contingency(table, correction=False).statistic)


def p_from_t(t, df, direction):
    if direction == "increase":
        return float(stats.t.sf(t, df))
    if direction == "decrease":
        return float(stats.t.cdf(t, df))
    return float(min(1.0, 2 * stats.t.sf(abs(t), df)))


out = []
for name, direction, canary, baseline, stable in CASES:
    groups = [g for g in (canary, baseline, stable) if g]
    df = len(canary) + len(baseline) + len(stable) - len(groups)
    dispersion = sum(pearson(g) for g in groups) / df
    (e_c, n_c), (e_b, n_b) = totals(canary), totals(baseline)
    others = baseline + stable
    if len(canary) == 1 and len(others) >= 2 and all(e > 0 for e, _ in others) and canary[0][0] > 0:
        log_ratio = lambda pod: math.log(pod[0] / pod[1])
        alternative = {"increase": "greater", "decrease": "less", "either": "two-sided"}[direction]
        test = stats.ttest_ind([log_ratio(canary[0])], [log_ratio(p) for p in others],
                               alternative=alternative)
        p_value, test_df = float(test.pvalue), len(others) - 1
    else:
        score = stats.chi2_contingency(np.array([[e_c, e_b], [n_c - e_c, n_b - e_b]]),
                                       correction=False).statistic
        d = e_c / n_c - e_b / n_b
        t = math.copysign(math.sqrt(score / dispersion), d)
        p_value, test_df = p_from_t(t, df, direction), df
    out.append({
        "name": name, "direction": direction, "points": POINTS,
        "canary": canary, "baseline": baseline, "stable": stable,
        "dispersion": dispersion, "df": test_df, "pValue": p_value,
    })

with open(os.path.join(HERE, "counts_cases.json"), "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
