"""Turn raw performances (interaction logs, or the published pickled .npz)
into a clean dataset in the project's own format, with a report.

Real data is messy: empty performances are skipped, rows with NaN, negative
dt, out-of-range controls or torn lines are dropped, and long pauses are
capped (a 12-minute break says nothing about the next gesture's timing).
A log's first event follows nothing, so it has no dt and is left out, as
IMPSY's dataset command leaves it out: both give the same rows from a log.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imps.model.dataset import Dataset
from imps.errors import DatasetError
from imps.io.interaction_log import PERFORMER, dimension_from_filename, read_log
from imps.model.rows import DEFAULT_MAX_DT, valid_rows

#: Fewer rows than this cannot fill a training and a validation window.
MIN_ROWS = 2 * 51


@dataclass
class Report:
    performances_in: int = 0
    performances_kept: int = 0
    skipped: list = field(default_factory=list)        # (name, reason)
    rows_in: int = 0
    rows_kept: int = 0
    rows_dropped: int = 0
    lines_skipped: int = 0                              # unreadable log lines (torn, garbage)
    dt_capped: int = 0

    def text(self) -> str:
        lines = [f"performances: {self.performances_in} read, {self.performances_kept} kept",
                 f"rows: {self.rows_in} read, {self.rows_kept} kept, {self.rows_dropped} dropped "
                 f"(NaN, negative dt or controls outside [0, 1])",
                 f"pauses capped: {self.dt_capped}"]
        if self.lines_skipped:
            lines.append(f"log lines skipped (torn or garbage): {self.lines_skipped}")
        for name, reason in self.skipped:
            lines.append(f"  skipped {name}: {reason}")
        return "\n".join(lines)


def clean(performances, names=None, max_dt: float = DEFAULT_MAX_DT, report: Report | None = None):
    """Cleaned performances (list of float32 arrays) and the report."""
    report = report or Report()
    kept = []
    names = names or [f"performance {i}" for i in range(len(performances))]
    for name, perf in zip(names, performances):
        perf = np.asarray(perf, dtype=np.float32)
        report.performances_in += 1
        report.rows_in += len(perf)
        if perf.ndim != 2 or len(perf) == 0:
            report.skipped.append((name, "empty"))
            continue
        ok = valid_rows(perf)
        rows = perf[ok].copy()
        report.rows_dropped += int((~ok).sum())
        over = rows[:, 0] > max_dt
        report.dt_capped += int(over.sum())
        rows[over, 0] = max_dt
        if len(rows) < 2:
            report.skipped.append((name, f"{len(rows)} usable rows"))
            report.rows_dropped += len(rows)
            continue
        kept.append(rows)
        report.performances_kept += 1
        report.rows_kept += len(rows)
    return kept, report


def _finish(perfs, report: Report, info: dict) -> Dataset:
    if report.rows_kept < MIN_ROWS:
        raise DatasetError(f"only {report.rows_kept} usable rows in {report.performances_kept} performances: "
                           f"too small to train on (need at least {MIN_ROWS}); record more playing")
    info = dict(info, rows=report.rows_kept, performances=report.performances_kept,
                dropped_rows=report.rows_dropped, capped_pauses=report.dt_capped)
    return Dataset.from_performances(perfs, info)


def from_logs(paths, dimension: int | None = None, max_dt: float = DEFAULT_MAX_DT,
              source: str = PERFORMER) -> tuple[Dataset, Report]:
    """Collate interaction logs of one dimension (others are skipped and reported)."""
    paths = sorted(Path(p) for p in paths)
    if not paths:
        raise DatasetError("no log files given")
    report = Report()
    perfs, names = [], []
    for path in paths:
        dim = dimension_from_filename(path)
        if dimension is None:
            dimension = dim
        if dim is not None and dim != dimension:
            report.skipped.append((path.name, f"{dim}-D log, collating {dimension}-D"))
            report.performances_in += 1
            continue
        records = read_log(path, dimension - 1 if dimension else None)
        report.lines_skipped += len(records.skipped)
        # A log's first event follows nothing: its dt is unknown, so it is left out (as IMPSY does).
        perfs.append(records.source_rows(source)[1:])
        names.append(path.name)
    perfs, report = clean(perfs, names, max_dt, report)
    return _finish(perfs, report, {"source": "logs", "files": [p.name for p in paths],
                                   "max_dt": max_dt}), report


def from_published_npz(path: str | os.PathLike, max_dt: float = DEFAULT_MAX_DT) -> tuple[Dataset, Report]:
    """Trusted import of the published pickled format: np.load(...)['perfs'].

    This unpickles, so it can run code from the file: only use it on files you trust.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=True) as z:  # trusted import, by the caller's explicit choice
            perfs = list(z["perfs"])
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: not a published MDRNN dataset with a 'perfs' array ({exc})") from exc
    perfs, report = clean(perfs, [f"{path.name}[{i}]" for i in range(len(perfs))], max_dt)
    return _finish(perfs, report, {"source": "published-npz", "files": [path.name], "max_dt": max_dt}), report
