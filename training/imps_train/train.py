"""Train an MDRNN on a dataset: honest validation, early stopping, best checkpoint kept."""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from imps.model.dataset import Dataset
from imps.model.model_file import DEFAULT_INPUT_SCALE

from . import mdrnn
from .windows import Windows, split


@dataclass
class TrainConfig:
    size: str = "s"
    layers: int = mdrnn.LAYERS
    mixtures: int = mdrnn.MIXTURES
    seq_len: int = 50
    batch_size: int = 64
    epochs: int = 100
    patience: int = 10
    learning_rate: float = 1e-3
    val_fraction: float = 0.1
    windows_per_epoch: int | None = None   # cap (for fair, bounded experiments); None: every window
    val_windows: int | None = None         # cap on validation windows (evenly spaced); None: all
    input_scale: float = DEFAULT_INPUT_SCALE
    seed: int = 0
    split_seed: int | None = None          # which performances are held out; None: the same as seed
    max_minutes: float | None = None       # wall-time budget: stop after the epoch that passes it; None: none

    @property
    def units(self) -> int:
        return mdrnn.units_for(self.size)


class _Batches:
    """A keras PyDataset over window views; reshuffled (and resampled) every epoch."""

    def __new__(cls, *args, **kwargs):
        import keras

        class Batches(keras.utils.PyDataset):
            def __init__(self, windows: Windows, batch_size: int, per_epoch: int | None, shuffle: bool, seed: int):
                super().__init__()
                self.windows, self.batch_size, self.shuffle = windows, batch_size, shuffle
                self.per_epoch = min(per_epoch or len(windows), len(windows))
                self.rng = np.random.default_rng(seed)
                if shuffle:
                    self.on_epoch_end()
                else:  # fixed and evenly spread, so validation is comparable across epochs and runs
                    self.order = np.linspace(0, len(windows) - 1, self.per_epoch).astype(np.int64)

            def __len__(self):
                return math.ceil(self.per_epoch / self.batch_size)

            def __getitem__(self, i):
                idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
                return self.windows.batch(self.windows.starts[idx])

            def on_epoch_end(self):
                if self.shuffle:
                    self.order = self.rng.permutation(len(self.windows))[:self.per_epoch]

        return Batches(*args, **kwargs)


def _progress_callback(epochs: int, steps: int, enabled: bool):
    import keras
    from tqdm.auto import tqdm

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, unit="epoch", desc="training", disable=not enabled)
            self.inner = None

        def on_epoch_begin(self, epoch, logs=None):
            self.inner = tqdm(total=steps, unit="batch", leave=False, desc=f"epoch {epoch + 1}",
                              disable=not enabled)

        def on_train_batch_end(self, batch, logs=None):
            self.inner.update(1)
            if logs and "loss" in logs:
                self.inner.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)

        def on_epoch_end(self, epoch, logs=None):
            self.inner.close()
            logs = logs or {}
            self.bar.set_postfix({k: f"{float(v):.3f}" for k, v in logs.items() if "loss" in k})
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return Progress()


def _time_budget_callback(max_minutes: float | None, stopped: dict):
    """Stop training at the end of the first epoch that finishes past the wall-time budget."""
    import keras

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            if max_minutes is not None and time.monotonic() - self.started >= 60 * max_minutes:
                stopped["epoch"] = epoch + 1
                self.model.stop_training = True

    return TimeBudget()


def train(dataset: Dataset, out_dir, config: TrainConfig | None = None, progress: bool = True) -> dict:
    """Train, keep the best weights, write history.csv, loss.png and run.json in out_dir."""
    import keras

    config = config or TrainConfig()
    if config.max_minutes is not None and not config.max_minutes > 0:
        raise ValueError(f"max_minutes must be positive, got {config.max_minutes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    train_set, val_set = split(dataset, config.val_fraction,
                               config.seed if config.split_seed is None else config.split_seed)
    train_w = Windows(train_set, config.seq_len, config.input_scale, "training")
    val_w = Windows(val_set, config.seq_len, config.input_scale, "validation")
    train_b = _Batches(train_w, config.batch_size, config.windows_per_epoch, True, config.seed)
    val_b = _Batches(val_w, config.batch_size, config.val_windows, False, config.seed)

    model = mdrnn.build_training_model(dataset.dimension, config.units, config.layers, config.mixtures,
                                       config.seq_len, config.learning_rate)
    weights = out / "best.weights.h5"
    budget_stop: dict = {}
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(weights), monitor="val_loss", save_best_only=True,
                                        save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        _time_budget_callback(config.max_minutes, budget_stop),
        _progress_callback(config.epochs, len(train_b), progress),
    ]
    started = time.perf_counter()
    fit = model.fit(train_b, validation_data=val_b, epochs=config.epochs, callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - started
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    if not weights.exists():  # every epoch was NaN: keep what we have so export can say so
        model.save_weights(str(weights))

    with open(out / "history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "loss", "val_loss"])
        for i, loss in enumerate(history["loss"]):
            val = history.get("val_loss", [None] * len(history["loss"]))[i]
            w.writerow([i + 1, loss, val])
    from .plots import loss_plot
    loss_plot(history, out / "loss.png", f"{config.size} ({config.units} units) on {dataset.info.get('files', ['?'])[0]}")

    val_losses = history.get("val_loss", [])
    finite = [v for v in val_losses if math.isfinite(v)]
    result = {
        "config": asdict(config) | {"units": config.units},
        "dimension": dataset.dimension,
        "dataset": dataset.info,
        "split": val_set.info.get("split"),
        "train_rows": int(len(train_set.rows)), "val_rows": int(len(val_set.rows)),
        "train_windows": len(train_w), "val_windows": len(val_w),
        "epochs_run": len(history["loss"]),
        "best_epoch": int(np.argmin(val_losses)) + 1 if finite else None,
        "best_val_loss": min(finite) if finite else None,
        "seconds": seconds,
        "stopped_by_time_budget": budget_stop.get("epoch"),
        "seconds_per_epoch": seconds / max(1, len(history["loss"])),
        "weights": weights.name,
        "history": history,
    }
    (out / "run.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def load_run(run_dir) -> dict:
    return json.loads((Path(run_dir) / "run.json").read_text())
