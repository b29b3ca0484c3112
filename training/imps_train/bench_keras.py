"""Keras beside TFLite: how far ahead is the box's runtime path?

Workstation only (needs TensorFlow). Times one step of the same single-step
model (the benchmark models' architecture, random weights) through Keras
``model.predict()`` (what the original IMPS called per prediction) and the
direct ``model(x)`` call, and adds those rows to an ``imps bench`` result so
``plot-bench`` draws them beside the TFLite lines. The TFLite figures to
compare against are the result's own ``predict`` rows (measured by the
device command in the device environment, without TensorFlow loaded).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from imps.bench.bench import COLUMNS, row, summary, write_results
from imps.model.model_file import state_names

from . import mdrnn


def _inputs(dimension: int, units: int, layers: int) -> dict:
    x = {"x": np.full((1, 1, dimension), 0.5, np.float32)}
    x.update({n: np.zeros((1, units), np.float32) for n in state_names(layers)})
    return x


def time_keras(units: int, dimension: int, iterations: int, predict_iterations: int | None = None,
               warmup: int = 5) -> dict:
    """Per-call seconds of model.predict() and model(x) for one step."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(1000 * units + dimension)
    model = mdrnn.build_inference_model(dimension, units)
    inputs = _inputs(dimension, units, mdrnn.LAYERS)
    tensors = {k: tf.constant(v) for k, v in inputs.items()}
    for _ in range(warmup):
        model.predict(inputs, verbose=0)
        model(tensors, training=False)
    clock = time.perf_counter
    t_predict, t_call = [], []
    for _ in range(predict_iterations or iterations):
        t0 = clock()
        model.predict(inputs, verbose=0)
        t_predict.append(clock() - t0)
    for _ in range(iterations):
        t0 = clock()
        out = model(tensors, training=False)
        np.asarray(out["params"])   # the result in hand, as the box needs it
        t_call.append(clock() - t0)
    return {"predict": t_predict, "call": t_call}


def bench_keras(output=None, units=(64, 512), dimension: int = 9, iterations: int = 200,
                predict_iterations: int | None = None, log=print) -> list[dict]:
    import tensorflow as tf
    runtime = f"keras (tensorflow {tf.__version__})"
    rows = []
    for u in units:
        t = time_keras(u, dimension, iterations, predict_iterations or max(20, iterations // 4))
        common = dict(runtime=runtime, threads="", units=u, dimension=dimension, layers=mdrnn.LAYERS,
                      mixtures=mdrnn.MIXTURES, model=f"u{u}-d{dimension} (Keras, random weights)")
        rows.append(row("keras_predict", summary([s * 1e3 for s in t["predict"]]), **common))
        rows.append(row("keras_call", summary([s * 1e3 for s in t["call"]]), **common))
    doc = None
    if output:
        path = Path(output)
        path = path / "bench.json" if path.is_dir() else path
        doc = json.loads(path.read_text())
        kept = [r for r in doc["rows"] if r["benchmark"] not in ("keras_predict", "keras_call")]
        extra = {k: v for k, v in doc.items() if k not in ("format", "machine", "benchmarks", "rows")}
        write_results(path.parent, doc["machine"], kept + rows, extra)
        doc["rows"] = kept + rows
    for line in report(rows, doc["rows"] if doc else []):
        log(line)
    return rows


def report(keras_rows: list[dict], all_rows: list[dict]) -> list[str]:
    """One line per model size: Keras predict(), model(x) and the TFLite prediction, and the speed-ups."""
    lines = []
    for kp in (r for r in keras_rows if r["benchmark"] == "keras_predict"):
        u, d = kp["units"], kp["dimension"]
        kc = next(r for r in keras_rows if r["benchmark"] == "keras_call" and r["units"] == u)
        line = f"u{u} D={d}: Keras predict() {kp['median']:.3f} ms, model(x) {kc['median']:.3f} ms"
        for r in all_rows:
            if (r["benchmark"] == "predict" and r["units"] == u and r["dimension"] == d and r["threads"] == 1):
                line += (f"; TFLite {r['runtime']} {r['median']:.3f} ms "
                         f"({kp['median'] / r['median']:.0f}x / {kc['median'] / r['median']:.0f}x faster)")
        lines.append(line)
    return lines


__all__ = ["bench_keras", "time_keras", "report", "COLUMNS"]
