"""A score for the structure of playing that a person sees and W1 does not.

The per-dimension distances in temperatures.py compare each control's values
and the move sizes one dimension at a time, so they cannot tell a horizontal
stroke followed by a vertical one from a diagonal scribble with the same
spread. This module measures the shape of the playing instead:

- **direction**: for each move within a stroke (the change of the direction
  controls between two events), how much of it lies along one axis: ``dominance`` =
  max |change_i| / |change|, 1 for a move along one axis, 1/sqrt(k) for a
  perfect diagonal of k controls. A move is *axis-aligned* if dominance is at
  least cos(22.5 deg), i.e. within 22.5 degrees of an axis in 2-D.
- **strokes**: a pause longer than ``gap`` seconds lifts the finger (or hand);
  a stroke is the run of events between pauses, and its length is its number
  of events.
- **pauses**: the durations of those pauses.

Each is compared between generated and real playing by the two-sample
Kolmogorov-Smirnov statistic (the largest gap between the two cumulative
distributions): it lies in [0, 1] whatever the units, so the parts can be
averaged. ``structure`` is the mean of four parts:

    d_axis    |axis-aligned fraction, generated - real|
    d_dir     KS of the dominance of moves
    d_stroke  KS of stroke lengths (events per stroke)
    d_pause   KS of pause durations (1 if only one side pauses at all)

0 is indistinguishable on these counts, 1 is as different as can be.
"""
from __future__ import annotations

import math

import numpy as np

#: A pause longer than this (seconds) ends a stroke; the same as the drawings' stroke gap.
STROKE_GAP = 0.25
#: A move within this angle of an axis counts as axis-aligned.
AXIS_COS = math.cos(math.radians(22.5))
#: Moves smaller than this (in control units) have no direction to speak of and are left out.
MIN_MOVE = 1e-4
PARTS = ("d_axis", "d_dir", "d_stroke", "d_pause")


def ks_statistic(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: max |F_a - F_b|; 1.0 if exactly one sample is empty."""
    a, b = np.sort(np.asarray(a, np.float64).ravel()), np.sort(np.asarray(b, np.float64).ravel())
    if len(a) == 0 and len(b) == 0:
        return 0.0
    if len(a) == 0 or len(b) == 0:
        return 1.0
    points = np.concatenate([a, b])
    fa = np.searchsorted(a, points, side="right") / len(a)
    fb = np.searchsorted(b, points, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def dominance(rows: np.ndarray, columns, gap: float = STROKE_GAP) -> np.ndarray:
    """max |change| / |change| over the direction columns, for every move bigger than MIN_MOVE
    within a stroke (the jump to where the next stroke starts, after a pause, is not drawn)."""
    rows = np.asarray(rows, np.float64)
    moves = np.diff(rows[:, list(columns)], axis=0)
    norm = np.linalg.norm(moves, axis=1)
    keep = (norm > MIN_MOVE) & (rows[1:, 0] <= gap)
    return np.abs(moves[keep]).max(axis=1) / norm[keep]


def strokes(rows: np.ndarray, gap: float = STROKE_GAP) -> tuple[np.ndarray, np.ndarray]:
    """(events per stroke, pause durations): a dt above gap starts a new stroke."""
    dt = np.asarray(rows, np.float64)[:, 0]
    starts = np.flatnonzero(dt[1:] > gap) + 1       # the first row never starts a pause of its own
    bounds = np.concatenate([[0], starts, [len(dt)]])
    return np.diff(bounds), dt[starts]


def features(runs, columns, gap: float = STROKE_GAP) -> dict:
    """Pooled direction, stroke and pause samples of one or more separate runs (never joined)."""
    runs = [runs] if isinstance(runs, np.ndarray) else list(runs)
    dom, lengths, pauses = [], [], []
    for r in runs:
        if len(r) < 2:
            continue
        dom.append(dominance(r, columns, gap))
        n, p = strokes(r, gap)
        lengths.append(n)
        pauses.append(p)
    cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0))
    dom, lengths, pauses = cat(dom), cat(lengths), cat(pauses)
    events = int(sum(len(r) for r in runs))
    return {"dominance": dom, "stroke_events": lengths, "pauses": pauses,
            "axis_fraction": float(np.mean(dom >= AXIS_COS)) if len(dom) else float("nan"),
            "pause_rate": len(pauses) / max(1, events)}


def direction_columns(dimension: int) -> list[int]:
    """Which columns give a move its direction: x, y for the 4-D LightPad (pressure is not a
    direction on the pad), every control otherwise (e.g. the X-Touch's 8 knobs)."""
    return [1, 2] if dimension == 4 else list(range(1, dimension))


def compare(generated, real, columns, gap: float = STROKE_GAP) -> dict:
    """Structure score of generated runs against real runs (lists of row arrays, or one array each)."""
    g, r = features(generated, columns, gap), features(real, columns, gap)
    if not math.isfinite(r["axis_fraction"]):
        raise ValueError("the real playing has no moves to compare directions with")
    gen_axis = g["axis_fraction"] if math.isfinite(g["axis_fraction"]) else 0.0
    parts = {
        "d_axis": abs(gen_axis - r["axis_fraction"]),
        "d_dir": ks_statistic(g["dominance"], r["dominance"]),
        "d_stroke": ks_statistic(g["stroke_events"], r["stroke_events"]),
        "d_pause": ks_statistic(g["pauses"], r["pauses"]),
    }
    return {**parts, "structure": float(np.mean([parts[k] for k in PARTS])),
            "axis_generated": gen_axis, "axis_real": r["axis_fraction"],
            "mean_stroke_generated": float(np.mean(g["stroke_events"])) if len(g["stroke_events"]) else 0.0,
            "mean_stroke_real": float(np.mean(r["stroke_events"])),
            "pause_rate_generated": g["pause_rate"], "pause_rate_real": r["pause_rate"]}
