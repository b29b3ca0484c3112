"""Several seeds of one size experiment, side by side: mean and spread per size.

Each input is the ``summary.json`` of one ``imps-train experiment`` run (the same
dataset, split and settings, another seed). The output is one row per size
with the number of seeds, the mean, standard deviation, lowest and highest of
the best validation loss and of the mean of the last five epochs, and a figure
with every seed's curves (left) and every seed's best validation loss with the
mean and its spread (right), so one lucky run cannot pass for a finding.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from .experiment import ExperimentError

FIELDS = ["units", "seeds", "best_val_mean", "best_val_sd", "best_val_min", "best_val_max",
          "last5_val_mean", "last5_val_sd", "best_epoch_mean", "epochs_run_mean", "early_stopped",
          "time_capped", "train_at_best_mean", "gap_at_best_mean", "climb_after_best_mean", "seconds_per_epoch_mean",
          "per_seed_best_val", "per_seed_peak_after_best"]


def load_summaries(paths) -> list[dict]:
    """summary.json files (or experiment directories holding one), checked to be comparable."""
    summaries = []
    for p in paths:
        p = Path(p)
        p = p / "summary.json" if p.is_dir() else p
        try:
            summaries.append(json.loads(p.read_text()))
        except (OSError, ValueError) as exc:
            raise ExperimentError(f"{p}: not a readable experiment summary ({exc})") from None
    if not summaries:
        raise ExperimentError("give at least one experiment summary")
    keys = ("epochs", "patience", "windows_per_epoch", "val_windows", "seq_len", "batch_size", "learning_rate")
    first = summaries[0]
    for s in summaries[1:]:
        differ = [k for k in keys if s["config"].get(k) != first["config"].get(k)]
        if differ or s["rows"] != first["rows"]:
            raise ExperimentError(f"summaries differ in more than the seed ({', '.join(differ) or 'dataset'}): "
                                  f"they cannot be pooled")
    return summaries


def _sd(values) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def combine(summaries: list[dict]) -> list[dict]:
    """One row per size (in order of units) over every summary that trained it."""
    by_units: dict[int, list] = {}
    for s in summaries:
        seed = s["config"].get("seed")
        for row in s["sizes"]:
            hist = s["histories"][str(row["units"])]
            by_units.setdefault(int(row["units"]), []).append((seed, row, hist))
    out = []
    for units in sorted(by_units):
        runs = by_units[units]
        best = [r["best_val_loss"] for _, r, _ in runs if r["best_val_loss"] is not None]
        last5 = [float(np.mean([v for v in h["val_loss"][-5:] if math.isfinite(v)])) for _, _, h in runs]
        train_at_best = [h["loss"][r["best_epoch"] - 1] for _, r, h in runs if r["best_epoch"]]
        gaps = [r["best_val_loss"] - t for (_, r, _), t in zip(runs, train_at_best)]
        # Overfitting shows after the best epoch: the highest validation loss from there to the end.
        peaks = {str(seed): float(max(v for v in h["val_loss"][r["best_epoch"] - 1:] if math.isfinite(v)))
                 for seed, r, h in runs if r["best_epoch"]}
        climbs = [peaks[str(seed)] - h["val_loss"][r["best_epoch"] - 1] for seed, r, h in runs if r["best_epoch"]]
        cfg_epochs = summaries[0]["config"]["epochs"]
        out.append({
            "units": units, "seeds": len(runs),
            "best_val_mean": float(np.mean(best)), "best_val_sd": _sd(best),
            "best_val_min": float(min(best)), "best_val_max": float(max(best)),
            "last5_val_mean": float(np.mean(last5)), "last5_val_sd": _sd(last5),
            "best_epoch_mean": float(np.mean([r["best_epoch"] for _, r, _ in runs])),
            "epochs_run_mean": float(np.mean([r["epochs_run"] for _, r, _ in runs])),
            "early_stopped": sum(1 for _, r, _ in runs if r["epochs_run"] < cfg_epochs
                                 and not r.get("stopped_by_time_budget")),
            "time_capped": sum(1 for _, r, _ in runs if r.get("stopped_by_time_budget")),
            "train_at_best_mean": float(np.mean(train_at_best)), "gap_at_best_mean": float(np.mean(gaps)),
            "climb_after_best_mean": float(np.mean(climbs)),
            "seconds_per_epoch_mean": float(np.mean([r["seconds_per_epoch"] for _, r, _ in runs])),
            "per_seed_best_val": {str(seed): r["best_val_loss"] for seed, r, _ in runs},
            "per_seed_peak_after_best": peaks,
        })
    return out


def write(summaries: list[dict], out_dir, label: str | None = None) -> list[dict]:
    rows = combine(summaries)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "seeds.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow(r | {k: " ".join(f"{seed}:{v:.4f}" for seed, v in r[k].items())
                            for k in ("per_seed_best_val", "per_seed_peak_after_best")})
    label = label or summaries[0]["dataset"]
    (out / "seeds.json").write_text(json.dumps({"dataset": label, "config": summaries[0]["config"],
                                                "seeds": [s["config"].get("seed") for s in summaries],
                                                "sizes": rows}, indent=2) + "\n")
    figure(summaries, rows, out / "seeds.png", label)
    return rows


def figure(summaries: list[dict], rows: list[dict], path, label: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 5), dpi=110, gridspec_kw={"width_ratios": [2.2, 1]})
    colours = plt.get_cmap("viridis")
    n = max(1, len(rows) - 1)
    colour = {r["units"]: colours(0.85 * i / n) for i, r in enumerate(rows)}
    later = []
    for s in summaries:
        for row in s["sizes"]:
            h = s["histories"][str(row["units"])]
            c = colour[int(row["units"])]
            epochs = np.arange(1, len(h["loss"]) + 1)
            ax.plot(epochs, h["loss"], color=c, lw=1, alpha=0.6)
            ax.plot(epochs, h["val_loss"], color=c, lw=1.3, ls="--", alpha=0.85)
            if row["best_epoch"]:
                ax.plot(row["best_epoch"], row["best_val_loss"], "o", color=c, ms=4)
            later += [v for v in h["loss"][1:] + h["val_loss"][1:] if math.isfinite(v)]
    if later:
        low, high = np.percentile(later, 0.5), np.percentile(later, 99.5)
        pad = 0.08 * max(high - low, 1e-3)
        ax.set_ylim(low - pad, high + pad)
    cfg = summaries[0]["config"]
    cap = cfg.get("windows_per_epoch")
    ax.set_xlabel(f"epoch ({cap:,} training windows each)" if cap else "epoch (a full pass over the training windows)")
    ax.set_ylabel("loss (mixture NLL, input scale 10)")
    ax.set_title(f"{label}: every seed; training solid, validation dashed, dot = best", fontsize=10)
    ax.grid(alpha=0.3)
    for i, r in enumerate(rows):
        vals = list(r["per_seed_best_val"].values())
        bx.plot([i] * len(vals), vals, "o", color=colour[r["units"]], alpha=0.7)
        if r["seeds"] > 1:        # one seed has no spread to draw
            bx.errorbar(i + 0.18, r["best_val_mean"], yerr=r["best_val_sd"], fmt="s", color="k", capsize=4, ms=5)
        text = f"{r['best_val_mean']:.2f}\n±{r['best_val_sd']:.2f}" if r["seeds"] > 1 else f"{r['best_val_mean']:.2f}"
        bx.annotate(text, (i + 0.25, r["best_val_mean"]), fontsize=8, va="center")
    bx.set_xticks(range(len(rows)), [f"{r['units']}\n({r['seeds']} seed{'s' if r['seeds'] > 1 else ''})" for r in rows])
    bx.set_xlim(-0.5, len(rows) - 0.2)
    bx.set_xlabel("LSTM units")
    bx.set_ylabel("best validation loss")
    bx.set_title("best validation loss: seeds (dots), mean ± sd", fontsize=10)
    bx.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
