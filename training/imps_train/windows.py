"""Training windows as numpy views, and an honest validation split.

Validation is held out by whole performances (or, when there are too few, by
a contiguous block at the end of each), never by overlapping windows, so no
validation row was ever seen in training.
"""
from __future__ import annotations

import numpy as np

from imps.model.dataset import Dataset
from imps.errors import DatasetError


def split(dataset: Dataset, fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, validation) with about ``fraction`` of the rows held out."""
    lengths = dataset.lengths()
    total = lengths.sum()
    target = fraction * total
    order = np.random.default_rng(seed).permutation(len(lengths))
    chosen, held = [], 0
    for i in order:
        if held >= target:
            break
        if held + lengths[i] <= 2 * target:
            chosen.append(i)
            held += lengths[i]
    if held >= 0.5 * target and len(chosen) < len(lengths):
        val = set(int(i) for i in chosen)
        train_p = [dataset.performance(i) for i in range(len(lengths)) if i not in val]
        val_p = [dataset.performance(i) for i in sorted(val)]
        how = f"{len(val_p)} whole performances"
    else:  # too few performances: hold out the last block of each
        train_p, val_p = [], []
        for perf in dataset.performances():
            cut = len(perf) - int(round(len(perf) * fraction))
            train_p.append(perf[:cut])
            val_p.append(perf[cut:])
        how = "the last block of each performance"
    info = dict(dataset.info, split=how)
    return (Dataset.from_performances([p for p in train_p if len(p)], info),
            Dataset.from_performances([p for p in val_p if len(p)], info))


def window_starts(dataset: Dataset, length: int) -> np.ndarray:
    """Start rows of every window of ``length`` rows that stays inside one performance."""
    counts = np.maximum(dataset.lengths() - length + 1, 0)
    if counts.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    firsts = np.repeat(dataset.offsets[:-1], counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return firsts + within


def window_view(dataset: Dataset, length: int) -> np.ndarray:
    """(N - length + 1, length, D) read-only view: window i starts at row i."""
    view = np.lib.stride_tricks.sliding_window_view(dataset.rows, length, axis=0)
    return view.transpose(0, 2, 1)


class Windows:
    """Batches of (input, target) windows: target is the input shifted by one row."""

    def __init__(self, dataset: Dataset, seq_len: int, scale: float, name: str = "training",
                 previous: bool = False):
        self.starts = window_starts(dataset, seq_len + 1)
        if len(self.starts) == 0:
            raise DatasetError(f"the {name} data has no performance of at least {seq_len + 1} rows: "
                               f"too small to train on (use a shorter --seq-len or record more)")
        self.view = window_view(dataset, seq_len + 1)
        self.scale = np.float32(scale)
        self.previous = previous    # the target also carries the row before it (the moves head's loss needs it)

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, starts: np.ndarray):
        w = self.view[starts] * self.scale   # one copy per batch
        if self.previous:
            return w[:, :-1], np.concatenate([w[:, :-1], w[:, 1:]], axis=-1)
        return w[:, :-1], w[:, 1:]
