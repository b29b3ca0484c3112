"""Export a trained run as the device's single-step .tflite plus its sidecar,
and prove it works before saying so.

Verification runs in a separate process with the device runtime (TensorFlow
and tflite-runtime cannot share one process): the .tflite must load there
and match the Keras step model within 1e-4 over 100 steps of carried state.
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from imps.errors import ModelError
from imps.model.model_file import PARAMS_NAME, Sidecar, model_sha256, sidecar_path, state_names, write_sidecar

from . import mdrnn
from .train import load_run

TOLERANCE = 1e-4
VERIFY_STEPS = 100


def convert(step_model) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(step_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops: the Pi has none
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints the whole signature otherwise
        return converter.convert()


def keras_trace(step_model, rows: np.ndarray, units: int, layers: int, scale: float) -> dict:
    """Run the Keras step model over rows carrying state; params and final state per step."""
    names = state_names(layers)
    state = {n: np.zeros((1, units), np.float32) for n in names}
    params = []
    for row in rows:
        out = step_model({"x": (row * scale).reshape(1, 1, -1).astype(np.float32), **state}, training=False)
        params.append(np.asarray(out[PARAMS_NAME])[0])
        state = {n: np.asarray(out[f"{n}_out"]) for n in names}
    return {"rows": rows.astype(np.float32), "params": np.array(params, np.float32)}


def verify(model_path: Path, trace: dict, runtime: str = "auto", python: str | None = None) -> str:
    """Check the .tflite against a Keras trace in a device-runtime process; returns its report."""
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "reference.npz"
        np.savez(ref, **trace)
        cmd = [python or sys.executable, "-m", "imps", "check-model", str(model_path),
               "--reference", str(ref), "--tolerance", str(TOLERANCE), "--runtime", runtime]
        done = subprocess.run(cmd, capture_output=True, text=True)
        report = done.stdout.strip().replace(str(model_path), model_path.name)
    if done.returncode != 0:
        raise ModelError(f"exported model {model_path} failed verification:\n{done.stdout}{done.stderr}")
    return report


def random_rows(dimension: int, steps: int = VERIFY_STEPS, seed: int = 0) -> np.ndarray:
    """Plausible gesture rows (exponential dt, uniform controls) to check a model with."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.exponential(0.05, steps), rng.random((steps, dimension - 1))]).astype(np.float32)


def write_verified(blob: bytes, sidecar: Sidecar, checks: list[tuple[str, dict]], out_path: Path) -> list[str]:
    """Write model and sidecar into a scratch directory beside out_path, verify them there
    against each (runtime, trace) of ``checks`` in the device runtime, then move both in;
    returns the verification reports."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".export-") as scratch:
        model_tmp = Path(scratch) / out_path.name
        model_tmp.write_bytes(blob)
        sidecar_tmp = write_sidecar(model_tmp, sidecar)
        reports = [verify(model_tmp, trace, runtime) for runtime, trace in checks]
        os.replace(sidecar_tmp, sidecar_path(out_path))
        os.replace(model_tmp, out_path)
    return reports


def export(run_dir, out_path, runtime: str = "auto", pi_temperature: float = 1.0,
           sigma_temperature: float = 0.01, reference_rows: np.ndarray | None = None) -> dict:
    """Write out_path (.tflite) and its sidecar from a training run; raise ModelError if it does not verify."""
    run_dir, out_path = Path(run_dir), Path(out_path)
    run = load_run(run_dir)
    cfg = run["config"]
    d, units, layers, k, scale = run["dimension"], cfg["units"], cfg["layers"], cfg["mixtures"], cfg["input_scale"]
    trained = mdrnn.build_training_model(d, units, layers, k, cfg["seq_len"], learning_rate=None)
    trained.load_weights(str(run_dir / run["weights"]))
    step = mdrnn.build_inference_model(d, units, layers, k)
    mdrnn.copy_weights(trained, step, layers)

    blob = convert(step)
    if reference_rows is None:
        reference_rows = random_rows(d)
    trace = keras_trace(step, reference_rows[:VERIFY_STEPS], units, layers, scale)
    if not np.isfinite(trace["params"]).all():
        raise ModelError(f"run {run_dir}: the trained model outputs NaN or inf; retrain (lower learning rate?)")
    sidecar = Sidecar(sha256=model_sha256(blob), dimension=d, units=units, layers=layers, mixtures=k, input_scale=scale,
                      pi_temperature=pi_temperature, sigma_temperature=sigma_temperature,
                      validation_loss=run.get("best_val_loss"),
                      training={"dataset": run["dataset"], "size": cfg["size"], "epochs_run": run["epochs_run"],
                                "best_epoch": run["best_epoch"], "train_rows": run["train_rows"],
                                "val_rows": run["val_rows"], "seq_len": cfg["seq_len"]})
    report, = write_verified(blob, sidecar, [(runtime, trace)], out_path)
    return {"path": str(out_path), "bytes": len(blob), "verification": report}
