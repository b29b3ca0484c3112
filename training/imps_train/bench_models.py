"""Random-weight models of every size in the benchmark sweep.

The device benchmark (``imps bench``) times models of every size the paper
timed: LSTM units 16..512 at D = 9, and dimension 2..16 at 64 units. Timing
does not depend on what the weights are, so these are untrained (Keras's own
seeded initialisation), converted exactly as a trained model is, each with a
sidecar, and each checked in a device-runtime process against the Keras step
model before it is kept. They are made here, on the workstation, and shipped
with the deploy: the box never needs TensorFlow to benchmark.

Names: ``u<units>-d<dimension>.tflite`` (+ ``.json``), e.g. ``u64-d9.tflite``.
"""
from __future__ import annotations

import json
from pathlib import Path

from imps.model.model_file import Sidecar, model_sha256, sidecar_path

from . import mdrnn
from .export import convert, keras_trace, random_rows, write_verified

#: The sweeps of the paper's two figures (imps.bench.bench reads the same names).
UNITS_SWEEP = (16, 32, 64, 128, 256, 512)
UNITS_SWEEP_DIMENSION = 9
DIMENSION_SWEEP = (2, 3, 4, 6, 9, 12, 16)
DIMENSION_SWEEP_UNITS = 64
CHECK_STEPS = 10
INPUT_SCALE = 10.0


def model_name(units: int, dimension: int) -> str:
    return f"u{units}-d{dimension}.tflite"


def sweep() -> list[tuple[int, int]]:
    """Every (units, dimension) the benchmark needs, once each, smallest first."""
    pairs = {(u, UNITS_SWEEP_DIMENSION) for u in UNITS_SWEEP}
    pairs |= {(DIMENSION_SWEEP_UNITS, d) for d in DIMENSION_SWEEP}
    return sorted(pairs)


def make_model(out_dir: Path, units: int, dimension: int, layers: int = mdrnn.LAYERS,
               mixtures: int = mdrnn.MIXTURES, seed: int = 0, runtime: str = "auto") -> dict:
    """Write one verified random-weight model and its sidecar into out_dir."""
    import keras
    keras.utils.set_random_seed(seed + 1000 * units + dimension)
    step = mdrnn.build_inference_model(dimension, units, layers, mixtures)
    blob = convert(step)
    trace = keras_trace(step, random_rows(dimension, CHECK_STEPS, seed), units, layers, INPUT_SCALE)
    sidecar = Sidecar(dimension=dimension, units=units, layers=layers, mixtures=mixtures,
                      input_scale=INPUT_SCALE, sha256=model_sha256(blob),
                      training={"purpose": "benchmark only: random (untrained) weights", "seed": seed})
    target = out_dir / model_name(units, dimension)
    report, = write_verified(blob, sidecar, [(runtime, trace)], target)
    return {"path": str(target), "units": units, "dimension": dimension, "bytes": len(blob),
            "verification": report}


def make_all(out_dir, pairs=None, seed: int = 0, runtime: str = "auto", force: bool = False,
             progress=print) -> list[dict]:
    """Make every model of the sweep (or of ``pairs``) that is missing (or all with force)."""
    out_dir = Path(out_dir)
    made = []
    for units, dimension in pairs or sweep():
        target = out_dir / model_name(units, dimension)
        if target.exists() and sidecar_path(target).exists() and not force:
            progress(f"{target.name}: kept ({target.stat().st_size} bytes)")
            continue
        info = make_model(out_dir, units, dimension, seed=seed, runtime=runtime)
        progress(f"{target.name}: {info['bytes']} bytes; {info['verification']}")
        made.append(info)
    total = sum(p.stat().st_size for p in out_dir.glob("*.tflite"))
    index = {"sweep": {"units": list(UNITS_SWEEP), "units_dimension": UNITS_SWEEP_DIMENSION,
                       "dimensions": list(DIMENSION_SWEEP), "dimensions_units": DIMENSION_SWEEP_UNITS},
             "models": [model_name(u, d) for u, d in (pairs or sweep())], "total_bytes": total}
    (out_dir / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    progress(f"{out_dir}: {len(index['models'])} models, {total / 1e6:.1f} MB")
    return made
