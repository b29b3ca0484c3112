"""The IMPS paper's two benchmark figures, from `imps bench` results.

Time per prediction against LSTM units (at D = 9) and against MDN dimension
(at 64 units), log-scaled time, one line per machine and runtime, error bars
from the interquartile range. Several result files overlay on one plot, so a
Pi 4, a Pi 5 and a laptop sit side by side. Solid lines are a whole
prediction (model step plus sampling), dashed lines the bare interpreter
invoke of the same model; Keras rows (from ``imps-train bench-keras``) are
drawn dotted. The paper's published points are drawn as a reference series.
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator  # noqa: E402

from imps.bench.bench import DIMENSION_SWEEP_UNITS, UNITS_SWEEP_DIMENSION  # noqa: E402

#: Published time per prediction (ms) in the IMPS paper (Martin & Torresen, NIME 2019),
#: as quoted in issue #6: only these points; the paper's other series are not copied here.
PAPER = {
    "Raspberry Pi 3B+ (paper)": {64: 6.69, 512: 37.64},
    "MacBook Pro (paper)": {64: 1.85, 512: 4.51},
}
UNITS_PNG = "prediction-vs-units.png"
DIMENSION_PNG = "prediction-vs-dimension.png"
STYLES = {"predict": dict(ls="-", marker="o", lw=1.8), "invoke": dict(ls="--", marker=None, lw=1.0, alpha=0.7),
          "keras_predict": dict(ls=":", marker="s", lw=1.4), "keras_call": dict(ls=":", marker="^", lw=1.4)}
LABELS = {"predict": "prediction", "invoke": "bare invoke", "keras_predict": "Keras predict()",
          "keras_call": "Keras model(x)"}


def load_results(path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / "bench.json"
    doc = json.loads(path.read_text())
    if not str(doc.get("format", "")).startswith("imps-bench/"):
        raise ValueError(f"{path}: not an `imps bench` result (format {doc.get('format')!r})")
    doc["_path"] = str(path)
    return doc


def machine_label(machine: dict) -> str:
    name = machine.get("pi_model") or machine.get("hostname") or "?"
    if machine.get("pi_model"):
        name = name.replace("Raspberry Pi", "Pi").replace(" Model ", " ").split(" Rev")[0]
    return name


def series(doc: dict, x_key: str, fixed_key: str, fixed_value: int, threads: int = 1):
    """{(runtime, benchmark): sorted [(x, median, q1, q3)]} for one sweep."""
    out: dict = {}
    for r in doc["rows"]:
        if r["benchmark"] not in STYLES or r[fixed_key] != fixed_value:
            continue
        if r["benchmark"] in ("predict", "invoke") and r["threads"] != threads:
            continue
        out.setdefault((r["runtime"], r["benchmark"]), []).append((r[x_key], r["median"], r["q1"], r["q3"]))
    return {k: sorted(v) for k, v in out.items()}


def _figure(docs, x_key, fixed_key, fixed_value, xlabel, title, xticks, log_x, paper: bool, threads: int):
    fig, ax = plt.subplots(figsize=(10.5, 5.2), dpi=120)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    i = 0
    for doc in docs:
        host = machine_label(doc["machine"])
        lines = series(doc, x_key, fixed_key, fixed_value, threads)
        for runtime in sorted({rt for rt, _ in lines}):
            colour = colours[i % len(colours)]
            i += 1
            for bench in STYLES:
                pts = lines.get((runtime, bench))
                if not pts:
                    continue
                xs = [p[0] for p in pts]
                med = [p[1] for p in pts]
                err = [[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]]
                who = f"{host} · {runtime}" if bench in ("predict", "invoke") else host
                ax.errorbar(xs, med, yerr=err, color=colour, capsize=3, label=f"{who}: {LABELS[bench]}",
                            **STYLES[bench])
    if paper and x_key == "units":
        for j, (name, points) in enumerate(PAPER.items()):
            xs = sorted(points)
            ax.plot(xs, [points[x] for x in xs], color="black", ls="none", marker="*D"[j % 2], ms=9,
                    mfc="white" if j else "black", label=name)
    elif paper:
        ax.text(0.01, 0.01, "paper reference points exist for the units figure only",
                transform=ax.transAxes, fontsize=7, color="grey")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    if log_x:
        ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(xticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(xticks)
    ax.set_xticklabels([str(x) for x in xticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("time per prediction (ms, log scale)")
    ax.set_title(title, fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return fig


def plot_bench(results, out_dir=None, paper: bool = True, threads: int = 1) -> list[Path]:
    docs = [load_results(p) for p in results]
    out_dir = Path(out_dir) if out_dir else Path(docs[0]["_path"]).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig = _figure(docs, "units", "dimension", UNITS_SWEEP_DIMENSION, "LSTM units per layer (2 layers, 5 mixtures)",
                  f"Time per prediction vs LSTM units (D = {UNITS_SWEEP_DIMENSION})",
                  [16, 32, 64, 128, 256, 512], True, paper, threads)
    fig.savefig(out_dir / UNITS_PNG)
    plt.close(fig)
    written.append(out_dir / UNITS_PNG)
    fig = _figure(docs, "dimension", "units", DIMENSION_SWEEP_UNITS, "MDN dimension D (dt plus controls)",
                  f"Time per prediction vs dimension ({DIMENSION_SWEEP_UNITS} LSTM units)",
                  [2, 3, 4, 6, 9, 12, 16], False, paper, threads)
    fig.savefig(out_dir / DIMENSION_PNG)
    plt.close(fig)
    written.append(out_dir / DIMENSION_PNG)
    return written
