"""IMPSY's own code, driven from the box's tests and benchmark.

This file runs in IMPSY's environment (`.venv/impsy`, requirements/impsy.txt),
never in the box's: it imports only IMPSY (the `impsy` package from PyPI),
numpy and the standard library. Each subcommand does one thing the way IMPSY
itself does it and writes plain files (.tflite, .npz, .log, JSON) that the
box's side then reads:

  models OUT D [D...] [--units N]   build IMPSY inference models (random weights) with
         [--optimise] [--layers L]  impsy.mdrnn.build_mdrnn_model, convert each with
         [--keras]                  impsy.tflite_converter.model_to_tflite (optimise: as
                                    `impsy convert-tflite --optimise`, weights quantised;
                                    keras: the .keras saved beside it, as IMPSY saves one,
                                    and NAME-ckpt.keras, its training model as IMPSY's
                                    ModelCheckpoint saves one)
  flex OUT D                        the same model converted as IMPSY 0.5 did (Select TF ops)
  trace MODEL OUT.npz [--steps N]   IMPSY's TfliteMDRNN.generate over N steps, feeding back
                                    its own samples: the rows fed and the mixture params
  log OUT_DIR D [--events N]        a performance logged by IMPSY's interaction logging code
  dataset LOG_DIR D OUT.npz         IMPSY's dataset command over a directory of logs
  bench MODEL                       TfliteMDRNN.generate timed in blocks asked for on stdin
                                    (start-up, per prediction, peak memory; see bench_impsy.py)
  version                           IMPSY's version, TensorFlow's, and the config template
                                    the package ships (what `impsy init` copies to config.toml)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

START = time.monotonic()


def _quiet():
    """IMPSY prints model summaries and analyser dumps: keep stdout for our results."""
    return contextlib.redirect_stdout(io.StringIO())


def build_models(out: Path, dimensions, units: int, seed: int, optimise: bool = False, layers: int = 2,
                 keras: bool = False) -> list[str]:
    from impsy import mdrnn
    from impsy.tflite_converter import model_to_tflite
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for d in dimensions:
        with _quiet():
            model = mdrnn.build_mdrnn_model(d, units, 5, layers, inference=True)
        rng = np.random.default_rng(seed + d)
        # Random weights of the size training gives, so every gate is in play.
        model.set_weights([rng.normal(0.0, 0.4, w.shape).astype(np.float32) for w in model.get_weights()])
        name = mdrnn.mdrnn_model_name(d, layers, units, 5) + ("-optimised" if optimise else "")
        if keras:   # the inference model as IMPSY saves one (weights_file_to_model_file), and the
            model.save(out / f"{name}.keras")   # training model a ModelCheckpoint saves, same weights
            with _quiet():
                training = mdrnn.build_mdrnn_model(d, units, 5, layers, inference=False)
            training.set_weights(model.get_weights())
            training.save(out / f"{name}-ckpt.keras")
        with _quiet():
            path = model_to_tflite(model, out / f"{name}.keras", optimise=optimise)
        made.append(str(path))
    return made


def build_flex(out: Path, d: int) -> str:
    """IMPSY 0.5's converter (tflite_converter.model_to_tflite then): from_keras_model with
    SELECT_TF_OPS, which keeps the LSTM's TensorList ops as Flex ops."""
    import tensorflow as tf
    from impsy import mdrnn
    with _quiet():
        model = mdrnn.build_mdrnn_model(d, 16, 5, 2, inference=True)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    converter._experimental_lower_tensor_list_ops = False  # as TF 2.15 (IMPSY 0.5's pin) converted it
    with _quiet():
        data = converter.convert()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"impsy-flex-d{d}.tflite"
    path.write_bytes(data)
    return str(path)


def trace(model_path: Path, out: Path, steps: int, seed: int) -> dict:
    """Run IMPSY's TfliteMDRNN as IMPSY runs it; record each input row and the params it predicted."""
    import keras_mdn_layer
    from impsy import mdrnn
    np.random.seed(seed)
    with _quiet():
        net = mdrnn.TfliteMDRNN.from_file(model_path)
    seen = []
    real = keras_mdn_layer.sample_from_output

    def recording(params, *args, **kwargs):  # IMPSY's generate samples from exactly these params
        seen.append(np.array(params, dtype=np.float32).reshape(-1))
        return real(params, *args, **kwargs)

    mdrnn.mdn.sample_from_output = recording
    rows = []
    row = mdrnn.random_sample(out_dim=net.dimension)
    for _ in range(steps):
        rows.append(np.asarray(row, dtype=np.float32))
        row = mdrnn.proc_generated_touch(net.generate(row), net.dimension)
    np.savez(out, rows=np.array(rows), params=np.array(seen))
    return {"steps": steps, "dimension": net.dimension, "units": net.n_hidden_units,
            "pi_temp": net.pi_temp, "sigma_temp": net.sigma_temp}


def write_log(out: Path, d: int, events: int, seed: int) -> dict:
    """A performance written by IMPSY's own logging (interaction.setup_logging, log_interaction)."""
    from impsy import interaction
    rng = np.random.default_rng(seed)
    with _quiet():
        logger = interaction.setup_logging(d, location=str(out), delay_file_open=False)
    for i in range(events):
        source = "rnn" if i % 5 == 4 else "interface"
        interaction.log_interaction(source, rng.random(d - 1), logger)
        time.sleep(float(rng.uniform(0.001, 0.01)))
    path = logger.handlers[0].baseFilename
    interaction.close_log(logger)
    return {"log": path}


def dataset(log_dir: Path, d: int, out: Path) -> dict:
    from impsy.dataset import generate_dataset
    with _quiet():
        path = generate_dataset(d, source=str(log_dir), destination=str(out.parent), filename=out.name)
    with np.load(path, allow_pickle=True) as z:  # IMPSY's own (pickled) format, made just now
        perfs = [np.asarray(p, dtype=np.float32) for p in z["perfs"]]
    np.savez(out.with_suffix(".rows.npz"), *perfs)
    return {"dataset": str(path), "performances": len(perfs), "rows": [len(p) for p in perfs]}


def bench(model_path: Path) -> None:
    """IMPSY's per-prediction cost (TfliteMDRNN.generate: model step plus sampling), served in blocks.

    Prints one JSON line after the first prediction (start-up figures), then for every line
    "N" on stdin the median seconds of N predictions, and at end of input the peak memory.
    The benchmark alternates these blocks with the box's, so machine load falls on both alike.
    """
    from impsy import mdrnn
    with _quiet():
        net = mdrnn.TfliteMDRNN.from_file(model_path)
    row = net.generate(mdrnn.random_sample(out_dim=net.dimension))
    _emit({"first_prediction_s": time.monotonic() - START, "peak_rss_mb": peak_rss_mb()})
    for line in sys.stdin:
        times = []
        for _ in range(int(line)):
            row = mdrnn.proc_generated_touch(row, net.dimension)
            t = time.perf_counter()
            row = net.generate(row)
            times.append(time.perf_counter() - t)
        _emit({"predict_s": sorted(times)[len(times) // 2]})
    _emit({"peak_rss_mb": peak_rss_mb()})


def _emit(result: dict) -> None:
    print(json.dumps(result), flush=True)


def peak_rss_mb() -> float:
    """VmHWM: this process's own peak resident memory (ru_maxrss would count the parent it was spawned from)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def version() -> dict:
    from importlib.metadata import version as v
    import impsy.data
    template = Path(impsy.data.__file__).parent / "default.toml"
    return {"impsy": v("impsy"), "tensorflow": v("tensorflow-cpu") if _has("tensorflow-cpu") else v("tensorflow"),
            "python": sys.version.split()[0], "config_template": str(template)}


def _has(dist: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version as v
    try:
        v(dist)
        return True
    except PackageNotFoundError:
        return False


def main(argv=None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    p = argparse.ArgumentParser(prog="impsy_side", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("models")
    m.add_argument("out", type=Path)
    m.add_argument("dimensions", type=int, nargs="+")
    m.add_argument("--units", type=int, default=16)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--optimise", action="store_true")
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--keras", action="store_true", help="also save each model's .keras beside its .tflite")
    f = sub.add_parser("flex")
    f.add_argument("out", type=Path)
    f.add_argument("dimension", type=int)
    t = sub.add_parser("trace")
    t.add_argument("model", type=Path)
    t.add_argument("out", type=Path)
    t.add_argument("--steps", type=int, default=200)
    t.add_argument("--seed", type=int, default=0)
    lg = sub.add_parser("log")
    lg.add_argument("out", type=Path)
    lg.add_argument("dimension", type=int)
    lg.add_argument("--events", type=int, default=120)
    lg.add_argument("--seed", type=int, default=0)
    ds = sub.add_parser("dataset")
    ds.add_argument("logs", type=Path)
    ds.add_argument("dimension", type=int)
    ds.add_argument("out", type=Path)
    b = sub.add_parser("bench")
    b.add_argument("model", type=Path)
    sub.add_parser("version")
    a = p.parse_args(argv)
    if a.cmd == "models":
        result = {"models": build_models(a.out, a.dimensions, a.units, a.seed, a.optimise, a.layers,
                                           a.keras)}
    elif a.cmd == "flex":
        result = {"model": build_flex(a.out, a.dimension)}
    elif a.cmd == "trace":
        result = trace(a.model, a.out, a.steps, a.seed)
    elif a.cmd == "log":
        result = write_log(a.out, a.dimension, a.events, a.seed)
    elif a.cmd == "dataset":
        result = dataset(a.logs, a.dimension, a.out)
    elif a.cmd == "bench":
        bench(a.model)
        return 0
    else:
        result = version()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
