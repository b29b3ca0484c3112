"""Shared fixtures: the real datasets, the two environments, a tiny real model."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "training" / "datasets"
DEVICE_PYTHON = os.environ.get("IMPS_DEVICE_PYTHON", str(ROOT / ".venv" / "device" / "bin" / "python"))


def published(name: str):
    """Performances from a published (pickled) dataset: a trusted file of this project."""
    with np.load(DATASETS / name, allow_pickle=True) as z:
        return list(z["perfs"])


@pytest.fixture(scope="session")
def device_python() -> str:
    if not Path(DEVICE_PYTHON).exists():
        pytest.fail(f"device environment missing at {DEVICE_PYTHON}: run `make setup`")
    return DEVICE_PYTHON


@pytest.fixture(scope="session")
def lightpad_12k():
    from imps_train.collate import from_published_npz
    dataset, _ = from_published_npz(DATASETS / "lightpad-4d-12k.npz")
    return dataset


def train_and_export(dataset, out_dir: Path, size="xxs", scale=10.0, name="tiny.tflite"):
    """A real (tiny) training run and verified export: seconds, not minutes."""
    from imps_train.export import export
    from imps_train.train import TrainConfig, train
    config = TrainConfig(size=size, epochs=1, windows_per_epoch=128, val_windows=64, input_scale=scale,
                         seq_len=20, batch_size=32)
    train(dataset, out_dir / "run", config, progress=False)
    export(out_dir / "run", out_dir / name)
    return out_dir / name


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, lightpad_12k) -> Path:
    """A 4-D xxs model trained for one short epoch on the real 12K LightPad data."""
    return train_and_export(lightpad_12k, tmp_path_factory.mktemp("tiny"))


sys.path.insert(0, str(ROOT / "tests"))
