import numpy as np

from imps.model.rows import MIN_DT, clip_row, make_row, valid_rows


def test_valid_rows_rejects_nan_negative_dt_and_out_of_range():
    rows = np.array([[0.1, 0.5, 0.5], [np.nan, 0.5, 0.5], [-0.1, 0.5, 0.5], [0.1, 1.5, 0.5],
                     [0.1, 0.5, -0.01], [0.0, 0.0, 1.0]], dtype=np.float32)
    assert valid_rows(rows).tolist() == [True, False, False, False, False, True]
    assert valid_rows(rows, max_dt=0.05).tolist() == [False, False, False, False, False, True]


def test_clip_row_enforces_min_dt_and_range():
    row = make_row(-1.0, [1.2, -0.3, 0.4])
    clip_row(row)
    assert row[0] == np.float32(MIN_DT)
    assert row[1:].tolist() == [1.0, 0.0, np.float32(0.4)]
