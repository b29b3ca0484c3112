"""Train an MDRNN on a dataset: honest validation, early stopping, best checkpoint kept.

Every epoch leaves a trail a killed or capped run can continue from: a row
appended to history.csv, the last weights with the optimizer state
(last-<epoch>.weights.h5) and resume.json (settings, dataset fingerprint,
history so far). ``train(..., resume=True)`` picks the run up there.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from imps.model.dataset import Dataset
from imps.errors import ImpsError
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
    head: str = "classic"                  # the output head (device/imps/model/heads.py)

    @property
    def units(self) -> int:
        return mdrnn.units_for(self.size)


RESUME_FILE = "resume.json"
HISTORY_FIELDS = ["epoch", "loss", "val_loss"]
#: Settings a resumed run may change: its budget, not what it learns from or how.
RESUMABLE_CHANGES = ("epochs", "max_minutes")


class ResumeError(ImpsError):
    """A saved run that cannot be continued as asked."""


def dataset_fingerprint(dataset: Dataset) -> str:
    """Short hash of the rows and performance boundaries: the same data, whatever the file name."""
    h = hashlib.sha256(np.ascontiguousarray(dataset.rows).tobytes())
    h.update(np.asarray(dataset.offsets, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


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


def _progress_callback(epochs: int, steps: int, enabled: bool, done: int = 0):
    import keras
    from tqdm.auto import tqdm

    class Progress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, initial=done, unit="epoch", desc="training", disable=not enabled)
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


def _write_json(path: Path, data: dict) -> None:
    """Whole or not at all: a kill mid-write leaves the previous file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _write_history_csv(path: Path, history: dict) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HISTORY_FIELDS)
        for i, loss in enumerate(history["loss"]):
            w.writerow([i + 1, loss, history["val_loss"][i]])


def _epoch_recorder(out: Path, state: dict):
    """After each epoch: append the history.csv row (flushed to disk), save the last weights with the
    optimizer state, then resume.json naming them (written last, so it never names missing weights)."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            loss, val = float(logs.get("loss", math.nan)), float(logs.get("val_loss", math.nan))
            state["history"]["loss"].append(loss)
            state["history"]["val_loss"].append(val)
            with open(out / "history.csv", "a", newline="") as f:
                csv.writer(f).writerow([epoch + 1, loss, val])
                f.flush()
                os.fsync(f.fileno())
            previous = state.get("weights")
            state["weights"] = f"last-{epoch + 1}.weights.h5"
            self.model.save_weights(str(out / state["weights"]))
            state["epochs_done"] = epoch + 1
            state["seconds"] = state["seconds_before"] + time.perf_counter() - state["started"]
            _write_json(out / RESUME_FILE, {k: v for k, v in state.items() if k not in ("started", "seconds_before")})
            if previous and previous != state["weights"]:
                (out / previous).unlink(missing_ok=True)

    return Recorder()


def _early_stopping(patience: int, saved: dict | None, best_weights):
    """EarlyStopping that, on a resumed run, starts from the saved best loss and patience counter."""
    import keras

    class Resumed(keras.callbacks.EarlyStopping):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            if saved is not None and saved["best_epoch"] is not None:
                self.best, self.best_epoch = saved["best_val_loss"], saved["best_epoch"] - 1
                self.wait = saved["epochs_done"] - saved["best_epoch"]
                self.best_weights = best_weights

    return Resumed(monitor="val_loss", patience=patience, restore_best_weights=True)


def _best(val_losses: list) -> tuple[int | None, float | None]:
    """(1-based epoch, loss) of the first lowest finite validation loss, as EarlyStopping counts it."""
    finite = [(v, i) for i, v in enumerate(val_losses) if math.isfinite(v)]
    if not finite:
        return None, None
    v, i = min(finite)
    return i + 1, v


def _saved_run(out: Path, config: TrainConfig, dataset: Dataset) -> dict | None:
    """The saved state of the run in out, checked against the asked settings; None if there is none."""
    path = out / RESUME_FILE
    if not path.exists():
        if (out / "run.json").exists():
            raise ResumeError(f"cannot resume {out}: it has a run made before runs could be resumed "
                              f"(no {RESUME_FILE}); train it again in a new directory")
        return None
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResumeError(f"cannot resume {out}: {RESUME_FILE} is unreadable ({exc})") from None
    asked = asdict(config) | {"units": config.units, "dimension": dataset.dimension,
                              "dataset": dataset_fingerprint(dataset)}
    have = {"head": "classic"} | saved["config"] | {"dimension": saved["dimension"],   # runs before heads: classic
                                                    "dataset": saved["dataset_fingerprint"]}
    differ = [f"{k} {have.get(k)!r} (asked {asked[k]!r})" for k in asked
              if k not in RESUMABLE_CHANGES and k != "size" and have.get(k) != asked[k]]
    if differ:
        raise ResumeError(f"cannot resume {out}: the saved run differs in " + ", ".join(differ))
    if not (out / saved["weights"]).exists():
        raise ResumeError(f"cannot resume {out}: its last weights {saved['weights']} are missing")
    return saved


def train(dataset: Dataset, out_dir, config: TrainConfig | None = None, progress: bool = True,
          resume: bool = False) -> dict:
    """Train, keep the best weights, write history.csv, loss.png and run.json in out_dir.

    ``resume``: continue the run saved in out_dir (same settings; only ``epochs`` and
    ``max_minutes`` may change) from its last epoch, or skip it if it had finished.
    """
    import keras

    config = config or TrainConfig()
    if config.max_minutes is not None and not config.max_minutes > 0:
        raise ValueError(f"max_minutes must be positive, got {config.max_minutes}")
    out = Path(out_dir)
    saved = _saved_run(out, config, dataset) if resume else None
    if saved is not None and (out / "run.json").exists() and (
            saved.get("finished") in ("early stopping", "not a number") or saved["epochs_done"] >= config.epochs):
        why = saved.get("finished") or "epoch cap"
        print(f"{out}: finished ({why}, {saved['epochs_done']} epochs); not trained again")
        return load_run(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    train_set, val_set = split(dataset, config.val_fraction,
                               config.seed if config.split_seed is None else config.split_seed)
    previous = config.head == "moves"
    train_w = Windows(train_set, config.seq_len, config.input_scale, "training", previous)
    val_w = Windows(val_set, config.seq_len, config.input_scale, "validation", previous)
    train_b = _Batches(train_w, config.batch_size, config.windows_per_epoch, True, config.seed)
    val_b = _Batches(val_w, config.batch_size, config.val_windows, False, config.seed)

    model = mdrnn.build_training_model(dataset.dimension, config.units, config.layers, config.mixtures,
                                       config.seq_len, config.learning_rate, config.head, config.input_scale)
    weights = out / "best.weights.h5"
    state = {"config": asdict(config) | {"units": config.units}, "dimension": dataset.dimension,
             "dataset_fingerprint": dataset_fingerprint(dataset), "epochs_done": 0, "weights": None,
             "finished": None, "seconds_before": 0.0, "history": {"loss": [], "val_loss": []}}
    best_weights, first_epoch = None, 0
    if saved is not None:
        model.optimizer.build(model.trainable_variables)   # so load_weights restores Adam's moments too
        if weights.exists():
            model.load_weights(str(weights))
            best_weights = model.get_weights()
        model.load_weights(str(out / saved["weights"]))
        first_epoch = saved["epochs_done"]
        for _ in range(first_epoch):   # the shuffles the saved epochs used, so the next ones are new
            train_b.on_epoch_end()
        history = {k: saved["history"][k][:first_epoch] for k in ("loss", "val_loss")}
        state.update(weights=saved["weights"], seconds_before=saved.get("seconds", 0.0), history=history)
        saved["best_epoch"], saved["best_val_loss"] = _best(history["val_loss"])
        print(f"{out}: resuming after epoch {first_epoch} (best validation loss {saved['best_val_loss']} "
              f"at epoch {saved['best_epoch']})")
    _write_history_csv(out / "history.csv", state["history"])   # the saved rows, or just the header
    if saved is None:   # a fresh run: nothing of an older run here may be resumed or reported as this one
        for name in (RESUME_FILE, "run.json"):
            (out / name).unlink(missing_ok=True)
    for stale in out.glob("last-*.weights.h5"):   # from an older run here, or a kill between save and delete
        if stale.name != state["weights"]:
            stale.unlink()
    budget_stop: dict = {}
    early = _early_stopping(config.patience, saved, best_weights)
    nan_stop = keras.callbacks.TerminateOnNaN()
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(weights), monitor="val_loss", save_best_only=True,
                                        save_weights_only=True,
                                        initial_value_threshold=saved and saved["best_val_loss"]),
        _epoch_recorder(out, state),
        early,
        nan_stop,
        _time_budget_callback(config.max_minutes, budget_stop),
        _progress_callback(config.epochs, len(train_b), progress, first_epoch),
    ]
    state["started"] = time.perf_counter()
    model.fit(train_b, validation_data=val_b, epochs=config.epochs, initial_epoch=first_epoch,
              callbacks=callbacks, verbose=0)
    history = state["history"]
    seconds = state["seconds_before"] + time.perf_counter() - state["started"]
    if not weights.exists():  # every epoch was NaN: keep what we have so export can say so
        model.save_weights(str(weights))
    if early.stopped_epoch > 0:
        state["finished"] = "early stopping"
    elif history["loss"] and not math.isfinite(history["loss"][-1]):
        state["finished"] = "not a number"
    elif len(history["loss"]) >= config.epochs:
        state["finished"] = "epoch cap"
    state["seconds"] = seconds
    _write_json(out / RESUME_FILE, {k: v for k, v in state.items() if k not in ("started", "seconds_before")})

    from .plots import loss_plot
    loss_plot(history, out / "loss.png", f"{config.size} ({config.units} units) on {dataset.info.get('files', ['?'])[0]}")

    best_epoch, best_val = _best(history["val_loss"])
    result = {
        "config": asdict(config) | {"units": config.units},
        "dimension": dataset.dimension,
        "dataset": dataset.info,
        "split": val_set.info.get("split"),
        "train_rows": int(len(train_set.rows)), "val_rows": int(len(val_set.rows)),
        "train_windows": len(train_w), "val_windows": len(val_w),
        "epochs_run": len(history["loss"]),
        "best_epoch": best_epoch,
        "best_val_loss": best_val,
        "seconds": seconds,
        "stopped_by_time_budget": budget_stop.get("epoch"),
        "finished": state["finished"],
        "seconds_per_epoch": seconds / max(1, len(history["loss"])),
        "weights": weights.name,
        "history": history,
    }
    (out / "run.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def load_run(run_dir) -> dict:
    return json.loads((Path(run_dir) / "run.json").read_text())
