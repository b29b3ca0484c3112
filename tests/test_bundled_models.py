"""The models the box ships: each loads in both device runtimes, the two agree step by step on
real playing, the sidecar matches the model, and the sampling temperatures in the sidecar are
the ones the temperature grid chose on that very model (docs/results.md)."""
import json
from pathlib import Path

import numpy as np
import pytest

from imps.model.model_file import model_sha256

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "device" / "imps" / "models"
RESULTS = ROOT / "docs" / "results"
# model file -> (dimension, dataset it was trained on, the grid summary that chose its temperatures)
BUNDLED = {
    "default.tflite": (4, "lightpad-4d-100k.npz", "temperatures-default.json"),
    "xtouch-9d.tflite": (9, "xtouch-9d.npz", "temperatures-xtouch-9d.json"),
}


@pytest.fixture(scope="module", params=sorted(BUNDLED))
def bundled(request):
    name = request.param
    path = MODELS / name
    assert path.exists(), f"bundled model {name} missing: make default-model"
    return name, path, json.loads(path.with_suffix(".json").read_text())


def test_sidecar_describes_the_model(bundled):
    name, path, sidecar = bundled
    dimension, dataset, _ = BUNDLED[name]
    assert sidecar["sha256"] == model_sha256(path.read_bytes())
    assert sidecar["dimension"] == dimension
    assert sidecar["training"]["dataset"]["files"] == [dataset]
    assert np.isfinite(sidecar["validation_loss"])
    assert (path.parent / f"{path.stem}-loss.png").exists() and (path.parent / f"{path.stem}-history.csv").exists()


def test_sidecar_temperatures_are_the_grids_choice_on_this_model(bundled):
    name, path, sidecar = bundled
    grid = RESULTS / BUNDLED[name][2]
    if not grid.exists():
        pytest.fail(f"{grid.name} missing: the temperatures of {name} must come from a grid run on it")
    summary = json.loads(grid.read_text())
    assert summary["model_sha256"] == sidecar["sha256"], f"{grid.name} was run on another model than {name}"
    best = summary["best"]
    assert (sidecar["pi_temperature"], sidecar["sigma_temperature"]) == (best["pi_temperature"],
                                                                         best["sigma_temperature"])


def test_both_device_runtimes_agree_on_real_playing(bundled, device_python):
    """ai-edge-litert here, tflite-runtime in the device environment, 100 steps of carried state."""
    from imps.model.runtime import MDRNN
    from imps_train.collate import from_published_npz
    from imps_train.export import verify
    name, path, _ = bundled
    dimension, dataset, _ = BUNDLED[name]
    data, _ = from_published_npz(ROOT / "training" / "datasets" / dataset)
    rows = data.rows[1000:1100]
    model = MDRNN(path, runtime="ai-edge-litert")
    model.reset()
    params = np.array([np.array(model.step(r)) for r in rows], np.float32)
    assert params.shape == (100, 2 * 5 * dimension + 5) and np.isfinite(params).all()
    report = verify(path, {"rows": rows.astype(np.float32), "params": params}, "tflite-runtime", python=device_python)
    assert "OK with tflite-runtime" in report and "over 100 steps" in report
