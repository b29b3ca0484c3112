import numpy as np
import pytest

from imps.model.rows import clip01, to_unit, valid_rows


def test_valid_rows_rejects_nan_negative_dt_and_out_of_range():
    rows = np.array([[0.1, 0.5, 0.5], [np.nan, 0.5, 0.5], [-0.1, 0.5, 0.5], [0.1, 1.5, 0.5],
                     [0.1, 0.5, -0.01], [0.0, 0.0, 1.0]], dtype=np.float32)
    assert valid_rows(rows).tolist() == [True, False, False, False, False, True]
    assert valid_rows(rows, max_dt=0.05).tolist() == [False, False, False, False, False, True]


def test_clip01_holds_a_control_to_the_range_and_nan_to_zero():
    values = (1.2, -0.3, 0.4, 0.0, 1.0, float("nan"), float("inf"), float("-inf"))
    assert [clip01(v) for v in values] == [1.0, 0.0, 0.4, 0.0, 1.0, 0.0, 1.0, 0.0]


def test_to_unit_scales_clips_and_inverts():
    assert to_unit(0.5, 0.0, 2.0) == 0.25 and to_unit(-1, 0, 1) == 0.0 and to_unit(3, 0, 1) == 1.0
    assert to_unit(50, 127, 0) == pytest.approx(77 / 127)      # low > high inverts
    assert to_unit(float("nan"), 0, 1) == 0.0
