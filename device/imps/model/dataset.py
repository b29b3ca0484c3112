"""The project's own dataset format: pickle-free, one home for it.

A dataset is every performance's rows stacked into one float32 array
``rows`` (N, D), plus an int64 array ``offsets`` (P + 1) so performance i is
``rows[offsets[i]:offsets[i + 1]]``, plus a JSON string ``info`` saying where
the data came from. Saved as ``.npz`` and always loaded with
``allow_pickle=False``: a dataset file can never run code.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DatasetError

FORMAT = "imps-dataset/1"


@dataclass
class Dataset:
    rows: np.ndarray                  # (N, D) float32: dt, x1..xn
    offsets: np.ndarray               # (P + 1,) int64, offsets[0] == 0, offsets[-1] == N
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.rows = np.ascontiguousarray(self.rows, dtype=np.float32)
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        if self.rows.ndim != 2 or self.rows.shape[1] < 2:
            raise DatasetError(f"dataset rows must be (N, D) with D >= 2, got shape {self.rows.shape}")
        o = self.offsets
        if o.ndim != 1 or len(o) < 1 or o[0] != 0 or o[-1] != len(self.rows) or (np.diff(o) < 0).any():
            raise DatasetError(
                f"dataset offsets must rise from 0 to {len(self.rows)}, got {o[:5]}...{o[-3:]}")

    @classmethod
    def from_performances(cls, performances, info: dict | None = None) -> "Dataset":
        perfs = [np.asarray(p, dtype=np.float32) for p in performances]
        if not perfs:
            raise DatasetError("no performances to make a dataset from")
        dims = {p.shape[1] for p in perfs}
        if len(dims) != 1:
            raise DatasetError(f"performances have different dimensions: {sorted(dims)}")
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in perfs])])
        return cls(np.concatenate(perfs), offsets, info or {})

    @property
    def dimension(self) -> int:
        return self.rows.shape[1]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def performance(self, i: int) -> np.ndarray:
        return self.rows[self.offsets[i]:self.offsets[i + 1]]

    def performances(self):
        return [self.performance(i) for i in range(len(self))]

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        info = dict(self.info, format=FORMAT)
        with open(path, "wb") as f:
            np.savez_compressed(f, rows=self.rows, offsets=self.offsets, info=np.array(json.dumps(info)))
        return path


def load_dataset(path: str | os.PathLike) -> Dataset:
    """Load a dataset in the project's own format (never unpickles)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"rows", "offsets"} - set(z.files)
            if missing:
                hint = " (a published pickled dataset? import it with `imps-train dataset --import-npz`)" \
                    if "perfs" in z.files else ""
                raise DatasetError(f"{path}: not an IMPS dataset, missing {sorted(missing)}{hint}")
            info = json.loads(str(z["info"])) if "info" in z.files else {}
            return Dataset(z["rows"], z["offsets"], info)
    except ValueError as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot be read as an IMPS dataset ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from exc
