"""The pipeline end to end on real data: dataset -> train -> export -> verify in both runtimes."""
import json
import subprocess

import numpy as np
import pytest

from imps.model.dataset import Dataset
from imps.errors import DatasetError, ModelError
from imps_train import windows
from imps_train.export import keras_trace, verify


def test_windows_are_views_within_performances():
    ds = Dataset.from_performances([np.arange(10 * 2).reshape(10, 2), np.arange(4 * 2).reshape(4, 2) + 100])
    view = windows.window_view(ds, 3)
    assert view.base is not None and not view.flags.owndata
    starts = windows.window_starts(ds, 3)
    assert starts.tolist() == list(range(8)) + [10, 11]
    for s in starts:  # never straddles a performance boundary
        w = view[s]
        assert (w >= 100).all() or (w < 100).all()


def test_validation_split_by_whole_performances_or_blocks(lightpad_12k):
    from imps_train.collate import from_published_npz
    from support import DATASETS
    big, _ = from_published_npz(DATASETS / "lightpad-4d-100k.npz")
    train, val = windows.split(big, 0.1)
    assert 0.05 <= len(val.rows) / len(big.rows) <= 0.2
    assert "whole performances" in val.info["split"]
    train_perfs = {p.tobytes() for p in train.performances()}
    assert not any(p.tobytes() in train_perfs for p in val.performances())
    t2, v2 = windows.split(Dataset.from_performances([lightpad_12k.rows]), 0.1)
    assert "last block" in v2.info["split"] and len(v2.rows) == round(len(lightpad_12k.rows) * 0.1)


def test_too_short_for_a_window_is_a_clear_error():
    ds = Dataset.from_performances([np.zeros((10, 3))])
    with pytest.raises(DatasetError, match="too small to train on"):
        windows.Windows(ds, 50, 10.0)


def test_tiny_training_run_writes_history_plot_and_model(tiny_model):
    run = tiny_model.parent / "run"
    for name in ("history.csv", "loss.png", "run.json", "best.weights.h5"):
        assert (run / name).stat().st_size > 0
    result = json.loads((run / "run.json").read_text())
    assert result["epochs_run"] == 1 and np.isfinite(result["best_val_loss"])
    sidecar = json.loads(tiny_model.with_suffix(".json").read_text())
    assert (sidecar["dimension"], sidecar["units"], sidecar["layers"], sidecar["mixtures"]) == (4, 16, 2, 5)
    assert sidecar["validation_loss"] == pytest.approx(result["best_val_loss"])


@pytest.mark.parametrize("runtime", ["tflite-runtime", "ai-edge-litert"])
def test_export_matches_keras_in_both_device_runtimes(tiny_model, device_python, runtime, lightpad_12k):
    from imps_train import mdrnn
    from imps_train.train import load_run
    run_dir = tiny_model.parent / "run"
    run = load_run(run_dir)
    trained = mdrnn.build_training_model(4, 16, 2, 5, 20, learning_rate=None)
    trained.load_weights(str(run_dir / run["weights"]))
    step = mdrnn.build_inference_model(4, 16, 2, 5)
    mdrnn.copy_weights(trained, step)
    trace = keras_trace(step, lightpad_12k.rows[:100], 16, 2, 10.0)
    report = verify(tiny_model, trace, runtime, python=device_python)
    assert f"OK with {runtime}" in report and "over 100 steps" in report
    # The check is not vacuous: a wrong reference fails loudly.
    trace["params"] = trace["params"] + 1e-3
    with pytest.raises(ModelError, match="differs from the reference"):
        verify(tiny_model, trace, runtime, python=device_python)


def test_device_environment_cannot_import_tensorflow(device_python):
    probe = ("import importlib.util, sys\n"
             "import imps.model.runtime, imps.io.interaction_log, imps.model.dataset\n"
             "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
             "import tensorflow\n")
    done = subprocess.run([device_python, "-c", probe], capture_output=True, text=True)
    assert done.returncode != 0
    assert "No module named 'tensorflow'" in done.stderr


def test_cli_help_on_every_command():
    from imps_train.cli import build_parser
    parser = build_parser()
    for cmd in ("dataset", "train", "export"):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([cmd, "--help"])
        assert exit_.value.code == 0
