"""The figures' format: the statistics of a list of timings, and one row per measurement.

Shared by ``imps bench`` (bench.py) and its end-to-end parts (e2e.py), which
both write rows of this shape.
"""
from __future__ import annotations

#: One CSV row per measurement, in this column order (the JSON rows have the same keys).
COLUMNS = ("benchmark", "runtime", "threads", "units", "dimension", "layers", "mixtures", "model",
           "n", "unit", "median", "q1", "q3", "iqr", "p99", "mean", "min", "max", "ratio", "note")


def percentile(sorted_values, q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summary(values, unit: str = "ms") -> dict:
    """median, quartiles, IQR, p99, mean, min, max and n of a list of numbers."""
    v = sorted(values)
    if not v:
        return {"n": 0, "unit": unit}
    q1, med, q3 = percentile(v, 25), percentile(v, 50), percentile(v, 75)
    return {"n": len(v), "unit": unit, "median": med, "q1": q1, "q3": q3, "iqr": q3 - q1,
            "p99": percentile(v, 99), "mean": sum(v) / len(v), "min": v[0], "max": v[-1]}


def row(benchmark: str, stats: dict, **fields) -> dict:
    out = {c: "" for c in COLUMNS}
    out["benchmark"] = benchmark
    out.update(stats)
    out.update({k: v for k, v in fields.items() if v is not None})
    return out
