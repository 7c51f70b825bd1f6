#!/usr/bin/env python3
"""Writes the Student t oracle for the pod test: quantiles and upper tail probabilities
from scipy.stats.t, at the degrees of freedom and levels the test uses (α spent over up to
hundreds of looks reaches probabilities of 1 − 10⁻⁵ and beyond).

Run from anywhere: python3 crates/fife-judge/tests/oracle/generate_t.py
The JSON it writes is committed; the Rust tests read only the JSON.
"""

import json
import os

from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))

DFS = [1, 2, 3, 4, 5, 7, 10, 16, 30, 60, 200, 1000]
PROBABILITIES = [0.5, 0.6, 0.9, 0.95, 0.975, 0.99, 0.995, 0.9975, 0.999, 0.9999, 1 - 1e-5, 1 - 1e-6]
POINTS = [-3.0, -0.5, 0.0, 0.25, 1.0, 2.0, 4.0, 10.0, 40.0]

cases = {"quantiles": [], "upper_tail": []}
for df in DFS:
    for p in PROBABILITIES:
        cases["quantiles"].append({"df": df, "p": p, "x": float(stats.t.ppf(p, df))})
    for x in POINTS:
        cases["upper_tail"].append({"df": df, "x": x, "sf": float(stats.t.sf(x, df))})

with open(os.path.join(HERE, "t_cases.json"), "w") as out:
    json.dump(cases, out, indent=1)
    out.write("\n")
