"""Train a list of model sizes on one dataset under identical settings and
compare them: the IMPS paper's model-size experiment, made repeatable.

Every size gets the same validation split, seed, window caps, epoch cap and
patience, so the only thing that differs between the curves is the number of
LSTM units. Each size trains in its own run directory (``<units>u/``, the
ordinary output of ``train.train``, so any of them can be exported); the
comparison is written as ``summary.csv``, ``summary.json`` and
``loss-by-size.png`` in the experiment directory.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

from imps.model.dataset import Dataset
from imps.errors import ImpsError

from . import mdrnn
from .train import RESUME_FILE, TrainConfig, load_run, train

SUMMARY_FIELDS = ["size", "units", "epochs_run", "best_epoch", "best_val_loss", "final_val_loss",
                  "best_train_loss", "final_train_loss", "seconds", "seconds_per_epoch",
                  "train_windows", "val_windows", "windows_per_epoch", "val_windows_cap", "stopped_by_time_budget",
                  "run_dir"]


class ExperimentError(ImpsError):
    """An experiment that cannot run as asked (bad size list, nothing trained)."""


def parse_sizes(text: str) -> list[int]:
    """'64,128,s,xl' -> [64, 128, 64, 512], in order, duplicates removed."""
    units = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            u = mdrnn.units_for(part)
        except ValueError as exc:
            raise ExperimentError(str(exc)) from None
        if u < 1:
            raise ExperimentError(f"size {part!r}: a model needs at least one unit")
        if u not in units:
            units.append(u)
    if not units:
        raise ExperimentError(f"no sizes in {text!r}: give a comma-separated list such as 64,128,256,512")
    return units


def _finite(values):
    return [v for v in values if v is not None and math.isfinite(v)]


def summarise(run: dict, run_dir: Path) -> dict:
    """One summary row from a training run's result."""
    hist = run["history"]
    loss, val = hist.get("loss", []), hist.get("val_loss", [])
    cfg = run["config"]
    return {
        "size": cfg["size"], "units": cfg["units"], "epochs_run": run["epochs_run"],
        "best_epoch": run["best_epoch"], "best_val_loss": run["best_val_loss"],
        "final_val_loss": val[-1] if val else None,
        "best_train_loss": min(_finite(loss)) if _finite(loss) else None,
        "final_train_loss": loss[-1] if loss else None,
        "seconds": run["seconds"], "seconds_per_epoch": run["seconds_per_epoch"],
        "train_windows": run["train_windows"], "val_windows": run["val_windows"],
        "windows_per_epoch": cfg["windows_per_epoch"], "val_windows_cap": cfg["val_windows"],
        "stopped_by_time_budget": run.get("stopped_by_time_budget"),
        "run_dir": run_dir.name,
    }


def _reusable(run_dir: Path, config: TrainConfig) -> dict | None:
    """A finished run in run_dir trained with exactly this config, else None."""
    try:
        run = load_run(run_dir)
    except (OSError, ValueError):
        return None
    wanted = asdict(config) | {"units": config.units}
    return run if run.get("config") == wanted and (run_dir / run.get("weights", "?")).exists() else None


def run_experiment(dataset: Dataset, sizes, out_dir, config: TrainConfig | None = None, label: str | None = None,
                   progress: bool = True, resume: bool = False) -> dict:
    """Train every size on dataset with the same config; write the summary and the figure.

    ``sizes``: a list of unit counts (or size names). ``config``: everything but
    the size, shared by all runs. ``resume``: continue each size's run saved in
    out_dir from its last epoch (skipped if it had finished; refused if its
    settings differ, see ``train.train``).
    """
    from tqdm.auto import tqdm

    units_list = parse_sizes(",".join(str(s) for s in sizes))
    config = config or TrainConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    label = label or (dataset.info.get("files") or ["dataset"])[0]
    rows, runs = [], {}
    started = time.perf_counter()
    bar = tqdm(units_list, unit="size", desc=f"experiment {label}", disable=not progress)
    for units in bar:
        bar.set_postfix(units=units)
        cfg = replace(config, size=str(units))
        run_dir = out / f"{units}u"
        # A finished run from before runs were resumable is reused only with the identical config.
        run = _reusable(run_dir, cfg) if resume and not (run_dir / RESUME_FILE).exists() else None
        if run is None:
            run = train(dataset, run_dir, cfg, progress=progress, resume=resume)
        rows.append(summarise(run, run_dir))
        runs[str(units)] = run["history"]
        _write(out, label, dataset, config, rows, runs, time.perf_counter() - started)  # partial results survive
    bar.close()
    return json.loads((out / "summary.json").read_text())


def _write(out: Path, label: str, dataset: Dataset, config: TrainConfig, rows: list, histories: dict,
           seconds: float) -> None:
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS)
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row[k] is None else row[k]) for k in SUMMARY_FIELDS})
    common = {k: v for k, v in asdict(config).items() if k != "size"}
    summary = {"dataset": label, "dataset_info": dataset.info, "rows": int(len(dataset.rows)),
               "performances": len(dataset), "config": common, "seconds": seconds,
               "sizes": rows, "histories": histories}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    size_figure(summary, out / "loss-by-size.png")


def size_figure(summary: dict, path, title: str | None = None) -> None:
    """Training (solid) and validation (dashed) loss per epoch, one colour per size."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    colours = plt.get_cmap("viridis")
    rows = summary["sizes"]
    n = max(1, len(rows) - 1)
    handles = []
    for i, row in enumerate(rows):
        hist = summary["histories"][str(row["units"])]
        colour = colours(0.85 * i / n)
        epochs = range(1, len(hist["loss"]) + 1)
        ax.plot(epochs, hist["loss"], color=colour, lw=1.8)
        if hist.get("val_loss"):
            ax.plot(epochs, hist["val_loss"], color=colour, lw=1.8, ls="--")
        best = row["best_val_loss"]
        text = f"{row['units']} units: best val {best:.2f} (epoch {row['best_epoch']})" if best is not None \
            else f"{row['units']} units: no finite validation loss"
        handles.append(Line2D([], [], color=colour, lw=2.5, label=text))
    handles += [Line2D([], [], color="0.3", lw=1.8, label="training"),
                Line2D([], [], color="0.3", lw=1.8, ls="--", label="validation")]
    cfg = summary["config"]
    cap = cfg.get("windows_per_epoch")
    ax.set_title(title or f"MDRNN size vs. loss on {summary['dataset']} "
                          f"({summary['rows']:,} rows, {summary['performances']} performances)", fontsize=11)
    ax.set_xlabel(f"epoch ({cap:,} training windows each)" if cap else "epoch (all training windows)")
    ax.set_ylabel("loss: mixture negative log-likelihood (input scale "
                  f"{cfg.get('input_scale', 10):g})")
    # The first epoch starts far above the rest; clip it so the differences that matter stay readable.
    later = [v for row in rows for key in ("loss", "val_loss")
             for v in summary["histories"][str(row["units"])].get(key, [])[1:] if v is not None and math.isfinite(v)]
    if later:
        low, high = min(later), max(later)
        pad = 0.08 * max(high - low, 1e-3)
        ax.set_ylim(low - pad, high + 3 * pad)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=8.5, loc="upper right", framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
