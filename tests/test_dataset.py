import datetime as dt

import numpy as np
import pytest

from support import DATASETS, published
from imps.model.dataset import Dataset, load_dataset
from imps.errors import DatasetError
from imps.io.interaction_log import log_filename
from imps_train import collate


def write_log(path, rows, start=dt.datetime(2026, 1, 1, 20, 0, 0)):
    t = start
    lines = []
    for source, dt_s, *controls in rows:
        t = t + dt.timedelta(seconds=dt_s)
        lines.append(f"{t.isoformat()},{source}," + ",".join(str(c) for c in controls))
    path.write_text("\n".join(lines) + "\n")


def test_dataset_round_trip_is_pickle_free(tmp_path):
    ds = Dataset.from_performances([np.ones((3, 3)), np.zeros((2, 3))], {"note": "x"})
    ds.save(tmp_path / "d.npz")
    back = load_dataset(tmp_path / "d.npz")
    assert back.lengths().tolist() == [3, 2]
    assert back.info["note"] == "x"
    with np.load(tmp_path / "d.npz", allow_pickle=False) as z:
        assert z["rows"].dtype == np.float32 and z["offsets"].dtype == np.int64


def test_loading_a_pickled_file_as_dataset_is_refused_with_a_hint():
    with pytest.raises(DatasetError, match="import-npz"):
        load_dataset(DATASETS / "lightpad-4d-12k.npz")


def test_collate_synthetic_logs(tmp_path):
    rng = np.random.default_rng(1)
    good = [("interface", 0.05, *rng.random(2).round(3)) for _ in range(80)]
    good[10] = ("interface", 0.05, 1.7, 0.5)          # out of range: dropped
    good[20] = ("interface", 900.0, 0.5, 0.5)         # a long pause: capped
    good += [("rnn", 0.05, 0.5, 0.5)] * 30             # model rows: not the performer's
    write_log(tmp_path / "2026-01-01T20-00-00-3d-mdrnn.log", good)
    write_log(tmp_path / "2026-01-02T20-00-00-3d-mdrnn.log",
              [("interface", 0.1, 0.2, 0.3)] * 40)
    (tmp_path / "2026-01-03T20-00-00-3d-mdrnn.log").write_text("")           # empty performance
    write_log(tmp_path / "2026-01-04T20-00-00-4d-mdrnn.log", [("interface", 0.1, 0.1, 0.1, 0.1)] * 9)
    with open(tmp_path / "2026-01-02T20-00-00-3d-mdrnn.log", "a") as f:
        f.write("2026-01-02T20:00:09,interf")                                # torn line
    ds, report = collate.from_logs(sorted(tmp_path.glob("*.log")))
    assert ds.dimension == 3
    assert ds.lengths().tolist() == [78, 39]   # each log's first event has no dt
    assert report.rows_dropped == 1 and report.dt_capped == 1 and report.lines_skipped == 1
    assert report.performances_kept == 2
    assert {name for name, _ in report.skipped} == {"2026-01-03T20-00-00-3d-mdrnn.log",
                                                     "2026-01-04T20-00-00-4d-mdrnn.log"}
    assert ds.rows[:, 0].max() <= 5.0


@pytest.mark.parametrize("name, perfs, rows", [
    ("lightpad-4d-12k.npz", 4, 12074),
    ("lightpad-4d-100k.npz", 33, 103250),
    ("xtouch-9d.npz", 35, 94603),
])
def test_published_datasets_import_with_expected_counts(name, perfs, rows):
    ds, report = collate.from_published_npz(DATASETS / name)
    assert len(ds) == perfs and len(ds.rows) == rows
    raw = published(name)
    assert report.performances_in == len(raw)
    assert sum(1 for _, why in report.skipped if why == "empty") == sum(1 for p in raw if len(p) == 0)
    assert ds.rows[:, 0].max() <= 5.0 and ds.rows[:, 1:].max() <= 1.0


def test_dirty_rows_are_dropped_and_reported():
    perf = np.array([[0.1, 0.5], [np.nan, 0.5], [0.1, np.inf], [-1, 0.2], [0.2, 0.3], [0.2, 1.01]] * 30,
                    dtype=np.float32)
    kept, report = collate.clean([perf, np.zeros((0, 2))])
    assert len(kept) == 1 and len(kept[0]) == 60
    assert report.rows_dropped == 120 and report.skipped == [("performance 1", "empty")]


def test_too_small_dataset_is_a_clear_error(tmp_path):
    write_log(tmp_path / log_filename(3), [("interface", 0.1, 0.5, 0.5)] * 20)
    with pytest.raises(DatasetError, match="too small to train on"):
        collate.from_logs([next(tmp_path.glob("*.log"))])
