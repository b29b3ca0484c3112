"""What the sampling temperatures do: generate over a grid of pi and sigma
temperatures with the device runtime and sampler, draw it, and measure it.

For every (pi, sigma) cell the model, primed with the first rows of a
held-out performance, plays ``steps`` rows on its own (its own output is its
next input, as on the box). Each cell is scored against the real held-out
playing by 1-D Wasserstein distances (mean absolute difference of sorted
quantiles) of:

- ``w1_dt``: the time between events, in seconds;
- ``w1_values``: the control values, averaged over the controls;
- ``w1_step``: the size of one move, |change of controls| per event, which
  tells smooth gestures from jitter (a noisy model can have the right value
  distribution and still shake).

``w1_mean`` is their mean with dt in seconds (all three are on comparable
scales: controls in [0, 1], dt mostly below a second); lower is closer to
the real playing. ``heldout_nll`` is the teacher-forced negative
log-likelihood of the held-out rows under the tempered mixture (scaled
units, so at pi = sigma = 1 it is the validation loss): how surprising the
real next gesture is under that setting.

This runs the device runtime in the training process, so it needs
ai-edge-litert (tflite-runtime cannot share a process with TensorFlow).
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imps.model.dataset import Dataset
from imps.errors import ImpsError
from imps.model.model_file import model_sha256, split_params

from . import structure
from .structure import STROKE_GAP
from .windows import split

DEFAULT_PI = (0.5, 1.0, 1.5, 2.0)
DEFAULT_SIGMA = (0.001, 0.01, 0.1, 0.5)
CSV_FIELDS = ["pi_temperature", "sigma_temperature", "w1_dt", "w1_values", "w1_step", "w1_mean",
              "w1_mean_sd_seeds", "w1_mean_sd_primings", "structure", "structure_sd_seeds",
              "structure_sd_primings", "d_axis", "d_dir", "d_stroke", "d_pause", "axis_generated", "axis_real",
              "mean_stroke_generated", "mean_stroke_real", "heldout_nll", "mean_dt", "mean_step",
              "w1_mean_choosing", "structure_choosing"]


class TemperatureError(ImpsError):
    """The exploration cannot run as asked."""


def parse_floats(text: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise TemperatureError(f"{name}: expected comma-separated numbers, got {text!r}") from None
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise TemperatureError(f"{name}: need one or more positive temperatures, got {text!r}")
    return values


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise TemperatureError(f"--seeds: expected comma-separated whole numbers, got {text!r}") from None
    if not seeds or any(not 0 <= v < 2 ** 31 for v in seeds) or len(set(seeds)) != len(seeds):
        raise TemperatureError(f"--seeds: need distinct seeds from 0 to 2**31 - 1, got {text!r}")
    return seeds


def wasserstein_1d(a, b, quantiles: int = 512) -> float:
    """1-D Wasserstein-1 distance between two samples, via their quantile functions."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise TemperatureError("cannot compare an empty sample")
    q = (np.arange(quantiles) + 0.5) / quantiles
    return float(np.mean(np.abs(np.quantile(a, q) - np.quantile(b, q))))


def step_sizes(rows: np.ndarray) -> np.ndarray:
    """Size of each move between consecutive events: Euclidean norm of the change of controls."""
    return np.linalg.norm(np.diff(rows[:, 1:], axis=0), axis=1)


def distances(generated, real_performances) -> dict:
    """W1 distances of dt, values and move size between generated runs and real performances.

    ``generated``: one array of rows, or a list of separately generated runs (moves are
    measured within each run, never across two).
    """
    runs = [generated] if isinstance(generated, np.ndarray) else list(generated)
    gen = np.concatenate(runs)
    gen_steps = np.concatenate([step_sizes(r) for r in runs])
    real = np.concatenate(real_performances)
    steps = np.concatenate([step_sizes(p) for p in real_performances if len(p) > 1])
    w_dt = wasserstein_1d(gen[:, 0], real[:, 0])
    w_val = float(np.mean([wasserstein_1d(gen[:, i], real[:, i]) for i in range(1, real.shape[1])]))
    w_step = wasserstein_1d(gen_steps, steps)
    return {"w1_dt": w_dt, "w1_values": w_val, "w1_step": w_step, "w1_mean": (w_dt + w_val + w_step) / 3,
            "mean_dt": float(gen[:, 0].mean()), "mean_step": float(gen_steps.mean())}


def tempered_nll(params: np.ndarray, targets: np.ndarray, dimension: int, mixtures: int,
                 pi_temperature: float, sigma_temperature: float) -> float:
    """Mean negative log-likelihood of targets (scaled units) under tempered mixtures.

    params (N, 2KD+K) as the model outputs them, targets (N, D) already scaled.
    Tempering follows the device sampler: pi = softmax(logits / pi_t), and each
    Gaussian's variance is multiplied by sigma_t.
    """
    nll = []
    for p, y in zip(params, targets):
        mus, sigmas, logits = split_params(p, dimension, mixtures)
        z = logits / pi_temperature
        log_pi = z - z.max() - np.log(np.exp(z - z.max()).sum())
        sd = sigmas * math.sqrt(sigma_temperature)
        log_n = -0.5 * (((y - mus) / sd) ** 2).sum(1) - np.log(sd).sum(1) - 0.5 * dimension * math.log(2 * math.pi)
        a = log_pi + log_n
        nll.append(-(a.max() + np.log(np.exp(a - a.max()).sum())))
    return float(np.mean(nll))


@dataclass
class Cell:
    pi_temperature: float
    sigma_temperature: float
    rows: np.ndarray            # the run drawn in the figure (first seed, first scoring priming)
    metrics: dict               # scores on the scoring set, mean over seeds (the numbers to believe)
    choose: dict                # the same scores on the choosing set, mean over seeds (used only to choose)
    spread: dict                # standard deviations over seeds and over primings of the scoring set
    pooled: dict = None         # the mean of the two sets' scores (for the final choice, after the cross-check)


def generate(model, prime: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """Prime the model with rows, then let it play `steps` rows on its own."""
    model.reset()
    model.sampler.seed(seed)
    for row in prime:
        model.step(row)
    out = np.empty((steps, model.dimension), np.float32)
    for i in range(steps):
        row = model.sample()
        out[i] = row
        model.step(row)
    return out


@dataclass
class Segment:
    """One priming: rows [start, start + prime_rows) of a held-out performance, then its real continuation."""
    performance: int            # index among the held-out performances
    start: int
    prime: np.ndarray
    real_next: np.ndarray


def held_out_sets(perfs: list, prime_rows: int, steps: int, per_performance: int) -> tuple[list, list, list, list]:
    """Split held-out performances into a choosing and a scoring set, disjoint by performance.

    Performances go, longest first, to whichever set has fewer primings so far (the choosing set
    on a tie), so both sets get primings even when one performance is much longer than the rest.
    Each performance gives up to ``per_performance`` primings from non-overlapping stretches of
    prime_rows + steps rows, evenly spread, so no two primings share a row. Returns
    (choose_segments, score_segments, choose_perfs, score_perfs).
    """
    need = prime_rows + steps
    usable = [(i, p) for i, p in enumerate(perfs) if len(p) >= need]
    if len(usable) < 2:
        raise TemperatureError(
            f"need at least 2 held-out performances of {need} rows or more (priming {prime_rows} + {steps} "
            f"generated) so that choosing and scoring use different performances; found {len(usable)} "
            f"(use a larger --val-fraction or shorter --steps / --prime-rows)")
    if per_performance < 1:
        raise TemperatureError(f"primings per performance must be at least 1, got {per_performance}")
    usable.sort(key=lambda ip: len(ip[1]), reverse=True)
    sets = ([], []), ([], [])
    for i, perf in usable:
        segments, whole = sets[0] if len(sets[0][0]) <= len(sets[1][0]) else sets[1]
        whole.append(perf)
        count = min(per_performance, len(perf) // need)
        for start in np.linspace(0, len(perf) - need, count).astype(int) if count > 1 else [0]:
            segments.append(Segment(i, int(start), perf[start:start + prime_rows],
                                    perf[start + prime_rows:start + need]))
    (choose, choose_perfs), (score, score_perfs) = sets
    return choose, score, choose_perfs, score_perfs


def score_runs(runs: list, real_perfs: list, real_next: list, columns) -> dict:
    """W1 distances against the set's whole performances, structure against its real continuations."""
    return distances(runs, real_perfs) | structure.compare(runs, real_next, columns)


SCORES = ["w1_dt", "w1_values", "w1_step", "w1_mean", "structure", "d_axis", "d_dir", "d_stroke", "d_pause",
          "axis_generated", "axis_real", "mean_stroke_generated", "mean_stroke_real", "mean_dt", "mean_step"]


CHOOSE_BY = ("both", "w1_mean", "structure")


def _criterion(cells, cell, choose_by: str, where: str) -> float:
    """A cell's score under choose_by on one set ("choose" or "metrics", the scoring set): the score
    itself, or for "both" its rank by mean W1 plus its rank by structure (scale-free)."""
    def value(c, name):
        return getattr(c, where)[name]
    if choose_by != "both":
        return value(cell, choose_by)
    return sum(sorted(value(c, name) for c in cells).index(value(cell, name)) for name in ("w1_mean", "structure"))


def choose(cells, choose_by: str, where: str = "choose"):
    """The best cell by choose_by on one set; ties go to the lower mean W1."""
    return min(cells, key=lambda c: (_criterion(cells, c, choose_by, where), getattr(c, where)["w1_mean"]))


def explore(model_path, dataset: Dataset, out_dir, pis=DEFAULT_PI, sigmas=DEFAULT_SIGMA, steps: int = 500,
            prime_rows: int = 50, val_fraction: float = 0.1, split_seed: int = 0, seeds=(0,),
            per_performance: int = 3, nll_rows: int = 2000, runtime: str = "ai-edge-litert",
            progress: bool = True, choose_by: str = "both") -> dict:
    """Generate and score every (pi, sigma) cell; write temperatures.csv/json and temperature-grid.png.

    The held-out performances are split into two sets of different performances, A and B (see
    held_out_sets). Every cell plays from every priming of both sets with each sampling seed. A
    cell is picked by ``choose_by`` (mean over seeds; "both": the lowest sum of its ranks by mean
    W1 and by structure) on A and scored on B, and picked on B and scored on A: these two
    folds are the honest estimate of how well the choice carries over to unseen playing. The
    cell that ships ("best") is picked by the same rule on both sets together. A cell's reported
    scores are set B's, with set A's beside them.
    """
    from tqdm.auto import tqdm

    from imps.model.runtime import MDRNN

    if choose_by not in CHOOSE_BY:
        raise TemperatureError(f"choose by one of {', '.join(CHOOSE_BY)}, not {choose_by!r}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise TemperatureError("give at least one sampling seed")
    model_path, out = Path(model_path), Path(out_dir)
    model = MDRNN(model_path, runtime=runtime, seed=seeds[0])
    if dataset.dimension != model.dimension:
        raise TemperatureError(f"model {model_path.name} is {model.dimension}-D but the dataset is "
                               f"{dataset.dimension}-D")
    _, held = split(dataset, val_fraction, split_seed)
    perfs = [p for p in held.performances() if len(p) > prime_rows]
    if not perfs:
        raise TemperatureError(f"no held-out performance longer than {prime_rows} rows to prime with "
                               f"(use --prime-rows smaller)")
    choose_segs, score_segs, choose_perfs, score_perfs = held_out_sets(perfs, prime_rows, steps, per_performance)
    columns = structure.direction_columns(model.dimension)

    # Teacher-forced mixture parameters for the scoring set's rows, once: tempering only changes how they are read.
    d, k, scale = model.dimension, model.shape.mixtures, model.shape.input_scale
    params, targets, budget = [], [], nll_rows
    for perf in score_perfs:
        if budget <= 1:
            break
        rows = perf[:budget]
        model.reset()
        for a, b in zip(rows[:-1], rows[1:]):
            params.append(np.array(model.step(a)))
            targets.append(b * scale)
        budget -= len(rows) - 1
    params, targets = np.array(params), np.array(targets)

    def mean_of(dicts):
        return {name: float(np.mean([m[name] for m in dicts])) for name in SCORES}

    cells = []
    grid = [(p, s) for s in sigmas for p in pis]
    for p, s in tqdm(grid, unit="cell", desc="temperature grid", disable=not progress):
        model.pi_temperature, model.sigma_temperature = p, s
        on_choose, on_score, per_priming, first = [], [], [], None
        for seed in seeds:
            runs_c = [generate(model, g.prime, steps, seed * 1000 + n) for n, g in enumerate(choose_segs)]
            runs_s = [generate(model, g.prime, steps, seed * 1000 + 500 + n) for n, g in enumerate(score_segs)]
            first = runs_s[0] if first is None else first
            on_choose.append(score_runs(runs_c, choose_perfs, [g.real_next for g in choose_segs], columns))
            on_score.append(score_runs(runs_s, score_perfs, [g.real_next for g in score_segs], columns))
            per_priming += [score_runs([r], score_perfs, [g.real_next], columns) for r, g in zip(runs_s, score_segs)]
        metrics = mean_of(on_score) | {"heldout_nll": tempered_nll(params, targets, d, k, p, s)}
        spread = {f"{name}_sd_seeds": float(np.std([m[name] for m in on_score], ddof=1)) if len(seeds) > 1
                  else float("nan") for name in ("w1_mean", "structure")}
        spread |= {f"{name}_sd_primings": float(np.std([m[name] for m in per_priming], ddof=1))
                   for name in ("w1_mean", "structure")}
        if not all(math.isfinite(v) for v in metrics.values()):
            raise TemperatureError(f"pi {p:g}, sigma {s:g}: a non-finite score {metrics}; the model is broken")
        on_a = mean_of(on_choose)
        cells.append(Cell(p, s, first, metrics, on_a, spread,
                          {name: 0.5 * (on_a[name] + metrics[name]) for name in SCORES}))

    # Cross-check both ways: choose on set A, score on set B, and the reverse. Each fold's score comes
    # from performances its choice never saw; the pair says how well this way of choosing carries over.
    folds = []
    for name, on, other in (("A->B", "choose", "metrics"), ("B->A", "metrics", "choose")):
        c = choose(cells, choose_by, on)
        ranked = sorted(cells, key=lambda x: (_criterion(cells, x, choose_by, other), getattr(x, other)["w1_mean"]))
        folds.append({"fold": name, "pi_temperature": c.pi_temperature, "sigma_temperature": c.sigma_temperature,
                      "rank_on_other_set": ranked.index(c) + 1, "on_other_set": getattr(c, other),
                      "on_own_set": getattr(c, on), "best_on_other_set": {
                          "pi_temperature": ranked[0].pi_temperature,
                          "sigma_temperature": ranked[0].sigma_temperature, **getattr(ranked[0], other)}})
    # What ships: the same rule on both sets together (the folds above are its honest estimate).
    chosen = choose(cells, choose_by, "pooled")
    rank_on_score = sorted(cells, key=lambda c: (_criterion(cells, c, choose_by, "metrics"),
                                                 c.metrics["w1_mean"])).index(chosen) + 1
    # The noise floor: the real continuations of one set scored against the other set's performances.
    real_metrics = score_runs([g.real_next for g in score_segs], choose_perfs, [g.real_next for g in choose_segs],
                              columns)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "temperatures.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for c in cells:
            w.writerow({"pi_temperature": c.pi_temperature, "sigma_temperature": c.sigma_temperature,
                        **{name: f"{c.metrics[name]:.6g}" for name in CSV_FIELDS[2:] if name in c.metrics},
                        **{name: f"{c.spread[name]:.6g}" for name in CSV_FIELDS if name in c.spread},
                        "w1_mean_choosing": f"{c.choose['w1_mean']:.6g}",
                        "structure_choosing": f"{c.choose['structure']:.6g}"})

    def describe(segs):
        return [{"performance": g.performance, "start_row": g.start} for g in segs]

    summary = {"model": model_path.name, "model_sha256": model_sha256(model_path.read_bytes()),
               "units": model.shape.units, "dimension": model.dimension,
               "steps": steps, "prime_rows": prime_rows, "seeds": seeds, "choose_by": choose_by,
               "direction_columns": columns, "held_out_performances": len(perfs),
               "choosing": {"performances": len(choose_perfs), "primings": describe(choose_segs)},
               "scoring": {"performances": len(score_perfs), "primings": describe(score_segs)},
               "nll_rows": int(len(targets)), "real_continuation": real_metrics,
               "folds": folds,
               "best": {"pi_temperature": chosen.pi_temperature, "sigma_temperature": chosen.sigma_temperature,
                        "rank_on_scoring_set": rank_on_score, **chosen.metrics, **chosen.spread,
                        "choosing_set": chosen.choose, "pooled": chosen.pooled},
               "cells": [{"pi_temperature": c.pi_temperature, "sigma_temperature": c.sigma_temperature,
                          **c.metrics, **c.spread, "choosing_set": c.choose, "pooled": c.pooled} for c in cells]}
    (out / "temperatures.json").write_text(json.dumps(summary, indent=2) + "\n")
    g0 = score_segs[0]
    grid_figure(cells, list(pis), list(sigmas), g0.prime, g0.real_next, real_metrics, chosen,
                out / "temperature-grid.png",
                f"{model_path.name} ({model.shape.units} units): {steps} generated events per cell after "
                f"{prime_rows} held-out rows; set A: {len(choose_segs)} primings from {len(choose_perfs)} "
                f"performances, set B (drawn, scored): {len(score_segs)} from {len(score_perfs)} others, "
                f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}")
    return summary


def _draw_path(ax, rows: np.ndarray, cmap, norm, colour=None):
    """x/y path, pressure as line width and colour; a new stroke after each long pause.
    Not 4-D (no x/y pad): every control against event number instead, one line each."""
    from matplotlib.collections import LineCollection

    if rows.shape[1] != 4:
        t = np.arange(len(rows))
        colours = (colour,) * rows.shape[1] if colour is not None else \
            [cmap(norm(i / max(1, rows.shape[1] - 2))) for i in range(rows.shape[1] - 1)]
        for i in range(1, rows.shape[1]):
            ax.plot(t, rows[:, i], lw=0.7, color=colours[i - 1])
        pauses = np.flatnonzero(rows[1:, 0] > STROKE_GAP) + 1
        ax.vlines(pauses, -0.02, 1.02, color="0.75", lw=0.5, zorder=0)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    xy = rows[:, 1:3]
    pressure = rows[:, 3]
    segs = np.stack([xy[:-1], xy[1:]], axis=1)
    joined = rows[1:, 0] <= STROKE_GAP
    mid = 0.5 * (pressure[:-1] + pressure[1:])
    lc = LineCollection(segs[joined], linewidths=0.4 + 3.0 * mid[joined],
                        colors=colour if colour is not None else cmap(norm(mid[joined])), capstyle="round")
    ax.add_collection(lc)
    ax.scatter(xy[~np.r_[True, joined], 0], xy[~np.r_[True, joined], 1], s=3, color="0.5", zorder=0)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def _caption(m: dict) -> str:
    return (f"W1 dt {m['w1_dt']:.3f} s, val {m['w1_values']:.3f}, step {m['w1_step']:.3f}\n"
            f"mean W1 {m['w1_mean']:.3f}  structure {m['structure']:.2f}\n"
            f"axis-aligned {100 * m['axis_generated']:.0f}% (real {100 * m['axis_real']:.0f}%)")


def grid_figure(cells, pis, sigmas, prime, real_next, real_metrics, chosen, path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    cmap, norm = plt.get_cmap("plasma_r"), Normalize(0.0, 1.0)
    n_r, n_c = len(sigmas), len(pis) + 1
    fig, axes = plt.subplots(n_r, n_c, figsize=(2.6 * n_c, 3.35 * n_r + 0.9), dpi=110, squeeze=False)
    by = {(c.pi_temperature, c.sigma_temperature): c for c in cells}
    for r, s in enumerate(sigmas):
        for c, p in enumerate(pis):
            ax = axes[r][c + 1]
            cell = by[(p, s)]
            _draw_path(ax, cell.rows, cmap, norm)
            m = cell.metrics
            ax.set_title(f"pi {p:g}, sigma {s:g}", fontsize=9,
                         fontweight="bold" if cell is chosen else "normal")
            ax.set_xlabel(_caption(m) + f"  NLL {m['heldout_nll']:.1f}", fontsize=7)
            if cell is chosen:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green")
                    spine.set_linewidth(2.5)
        axes[r][0].axis("off")
    ax = axes[0][0]
    ax.axis("on")
    _draw_path(ax, real_next, cmap, norm)
    ax.set_title("real continuation", fontsize=9)
    ax.set_xlabel(_caption(real_metrics).replace("\naxis", " (real vs. real)\naxis"), fontsize=7)
    if n_r > 1:
        ax = axes[1][0]
        ax.axis("on")
        _draw_path(ax, prime, cmap, norm)
        ax.set_title(f"priming ({len(prime)} rows)", fontsize=9)
    how = ("x/y path; pressure = width and colour" if real_next.shape[1] == 4
           else "every control against event number; grey lines: pauses")
    fig.suptitle(title + f"\n{how}; scores on the scoring set (lower is closer to real playing); "
                         "green: the cell chosen on both sets (what ships)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96), h_pad=1.2)
    fig.savefig(path)
    plt.close(fig)
