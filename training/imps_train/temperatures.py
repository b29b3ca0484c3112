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

from imps.dataset import Dataset
from imps.errors import ImpsError
from imps.model_file import split_params

from .windows import split

DEFAULT_PI = (0.5, 1.0, 1.5, 2.0)
DEFAULT_SIGMA = (0.001, 0.01, 0.1, 0.5)
#: A pause longer than this starts a new stroke in the drawings (finger lifted).
STROKE_GAP = 0.25
CSV_FIELDS = ["pi_temperature", "sigma_temperature", "w1_dt", "w1_values", "w1_step", "w1_mean",
              "heldout_nll", "mean_dt", "mean_step"]


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
    rows: np.ndarray
    metrics: dict


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


def explore(model_path, dataset: Dataset, out_dir, pis=DEFAULT_PI, sigmas=DEFAULT_SIGMA, steps: int = 500,
            prime_rows: int = 50, val_fraction: float = 0.1, split_seed: int = 0, seed: int = 0,
            nll_rows: int = 2000, runtime: str = "ai-edge-litert", progress: bool = True, repeats: int = 3) -> dict:
    """Generate and score every (pi, sigma) cell; write temperatures.csv/json and temperature-grid.png.

    Each cell is generated ``repeats`` times, primed from the ``repeats`` longest held-out
    performances (sampling seeds seed, seed + 1, ...), and scored on all of it; the
    figure draws the first.
    """
    from tqdm.auto import tqdm

    from imps.runtime import MDRNN

    model_path, out = Path(model_path), Path(out_dir)
    model = MDRNN(model_path, runtime=runtime, seed=seed)
    if dataset.dimension != model.dimension:
        raise TemperatureError(f"model {model_path.name} is {model.dimension}-D but the dataset is "
                               f"{dataset.dimension}-D")
    _, held = split(dataset, val_fraction, split_seed)
    perfs = [p for p in held.performances() if len(p) > prime_rows]
    if not perfs:
        raise TemperatureError(f"no held-out performance longer than {prime_rows} rows to prime with "
                               f"(use --prime-rows smaller)")
    if repeats < 1:
        raise TemperatureError(f"repeats must be at least 1, got {repeats}")
    longest = sorted(perfs, key=len, reverse=True)
    primes = [longest[i % len(longest)][:prime_rows] for i in range(repeats)]
    first = longest[0]
    prime = primes[0]
    real_next = first[prime_rows:prime_rows + steps]

    # Teacher-forced mixture parameters for the held-out rows, once: tempering only changes how they are read.
    d, k, scale = model.dimension, model.shape.mixtures, model.shape.input_scale
    params, targets, budget = [], [], nll_rows
    for perf in perfs:
        if budget <= 1:
            break
        rows = perf[:budget]
        model.reset()
        for a, b in zip(rows[:-1], rows[1:]):
            params.append(np.array(model.step(a)))
            targets.append(b * scale)
        budget -= len(rows) - 1
    params, targets = np.array(params), np.array(targets)

    cells = []
    grid = [(p, s) for s in sigmas for p in pis]
    for p, s in tqdm(grid, unit="cell", desc="temperature grid", disable=not progress):
        model.pi_temperature, model.sigma_temperature = p, s
        runs = [generate(model, pr, steps, seed + r) for r, pr in enumerate(primes)]
        rows = runs[0]
        metrics = distances(runs, perfs)
        metrics["heldout_nll"] = tempered_nll(params, targets, d, k, p, s)
        if not all(math.isfinite(v) for v in metrics.values()):
            raise TemperatureError(f"pi {p:g}, sigma {s:g}: a non-finite score {metrics}; the model is broken")
        cells.append(Cell(p, s, rows, metrics))

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "temperatures.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        for c in cells:
            w.writerow({"pi_temperature": c.pi_temperature, "sigma_temperature": c.sigma_temperature,
                        **{name: f"{c.metrics[name]:.6g}" for name in CSV_FIELDS[2:]}})
    best = min(cells, key=lambda c: c.metrics["w1_mean"])
    # The noise floor: real continuations of the same primings, scored the same way.
    real_metrics = distances([longest[i % len(longest)][prime_rows:prime_rows + steps] for i in range(repeats)
                              if len(longest[i % len(longest)]) > prime_rows + 1], perfs)
    summary = {"model": model_path.name, "units": model.shape.units, "steps": steps, "prime_rows": prime_rows,
               "seed": seed, "repeats": repeats, "held_out_performances": len(perfs), "nll_rows": int(len(targets)),
               "real_continuation": real_metrics,
               "best": {"pi_temperature": best.pi_temperature, "sigma_temperature": best.sigma_temperature,
                        **best.metrics},
               "cells": [{"pi_temperature": c.pi_temperature, "sigma_temperature": c.sigma_temperature,
                          **c.metrics} for c in cells]}
    (out / "temperatures.json").write_text(json.dumps(summary, indent=2) + "\n")
    grid_figure(cells, list(pis), list(sigmas), prime, real_next, real_metrics, out / "temperature-grid.png",
                f"{model_path.name} ({model.shape.units} units): {steps} generated events per cell after "
                f"{prime_rows} held-out rows")
    return summary


def _draw_path(ax, rows: np.ndarray, cmap, norm, colour=None):
    """x/y path, pressure as line width and colour; a new stroke after each long pause."""
    from matplotlib.collections import LineCollection

    xy = rows[:, 1:3]
    pressure = rows[:, 3] if rows.shape[1] > 3 else np.full(len(rows), 0.5)
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


def grid_figure(cells, pis, sigmas, prime, real_next, real_metrics, path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    cmap, norm = plt.get_cmap("plasma_r"), Normalize(0.0, 1.0)
    n_r, n_c = len(sigmas), len(pis) + 1
    fig, axes = plt.subplots(n_r, n_c, figsize=(2.6 * n_c, 3.15 * n_r + 0.7), dpi=110, squeeze=False)
    by = {(c.pi_temperature, c.sigma_temperature): c for c in cells}
    best = min(cells, key=lambda c: c.metrics["w1_mean"])
    for r, s in enumerate(sigmas):
        for c, p in enumerate(pis):
            ax = axes[r][c + 1]
            cell = by[(p, s)]
            _draw_path(ax, cell.rows, cmap, norm)
            m = cell.metrics
            ax.set_title(f"pi {p:g}, sigma {s:g}", fontsize=9,
                         fontweight="bold" if cell is best else "normal")
            ax.set_xlabel(f"W1 dt {m['w1_dt']:.3f} s, val {m['w1_values']:.3f}, step {m['w1_step']:.3f}\n"
                          f"mean W1 {m['w1_mean']:.3f}   held-out NLL {m['heldout_nll']:.2f}", fontsize=7.5)
            if cell is best:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:green")
                    spine.set_linewidth(2.5)
        axes[r][0].axis("off")
    ax = axes[0][0]
    ax.axis("on")
    _draw_path(ax, real_next, cmap, norm)
    ax.set_title("real continuation", fontsize=9)
    ax.set_xlabel(f"W1 dt {real_metrics['w1_dt']:.3f} s, val {real_metrics['w1_values']:.3f}, "
                  f"step {real_metrics['w1_step']:.3f}\nmean W1 {real_metrics['w1_mean']:.3f} (real vs. all held-out)",
                  fontsize=7.5)
    if n_r > 1:
        ax = axes[1][0]
        ax.axis("on")
        _draw_path(ax, prime, cmap, norm)
        ax.set_title(f"priming ({len(prime)} rows)", fontsize=9)
    fig.suptitle(title + "\nx/y path; pressure = width and colour; W1 = distance to held-out playing "
                         "(lower is closer); green: lowest mean W1", fontsize=9.5)
    fig.tight_layout(rect=(0, 0, 1, 0.97), h_pad=1.2)
    fig.savefig(path)
    plt.close(fig)
