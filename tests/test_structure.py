"""The structure score on hand-made playing with known answers, and the grid's honest split."""
import math

import numpy as np
import pytest

from imps_train import structure
from imps_train.structure import STROKE_GAP


def _rows(points, dt=0.02, pauses=()):
    """4-D rows (dt, x, y, pressure) through the given x/y points; a long dt before each index in pauses."""
    pts = np.asarray(points, np.float64)
    rows = np.column_stack([np.full(len(pts), dt), pts, np.full(len(pts), 0.5)])
    for i in pauses:
        rows[i, 0] = 1.0
    return rows


def _line(start, end, n):
    return np.linspace(start, end, n)


def test_horizontal_and_vertical_strokes_are_all_axis_aligned_and_a_diagonal_is_not():
    cols = structure.direction_columns(4)
    assert cols == [1, 2]
    square = _rows(np.concatenate([_line((0.1, 0.1), (0.9, 0.1), 20), _line((0.9, 0.15), (0.9, 0.9), 20)]))
    diagonal = _rows(_line((0.1, 0.1), (0.9, 0.9), 40))
    assert structure.features(square, cols)["axis_fraction"] == 1.0
    assert structure.features(diagonal, cols)["axis_fraction"] == 0.0
    dom = structure.dominance(diagonal, cols)
    assert np.allclose(dom, 1 / math.sqrt(2))
    # 20 degrees off the x axis is inside the 22.5-degree cone; 25 is not.
    for angle, aligned in ((20, 1.0), (25, 0.0)):
        a = math.radians(angle)
        path = _rows(_line((0.1, 0.1), (0.1 + 0.5 * math.cos(a), 0.1 + 0.5 * math.sin(a)), 10))
        assert structure.features(path, cols)["axis_fraction"] == aligned


def test_pressure_changes_do_not_count_as_direction_on_the_lightpad():
    rows = _rows(_line((0.1, 0.5), (0.9, 0.5), 30))
    rows[:, 3] = np.linspace(0, 1, 30)          # pressing harder while moving right: still a horizontal stroke
    assert structure.features(rows, structure.direction_columns(4))["axis_fraction"] == 1.0


def test_one_knob_at_a_time_is_axis_aligned_in_nine_dimensions():
    rows = np.zeros((9, 9))
    rows[:, 0] = 0.05
    for i in range(1, 9):                       # knob i turns at event i
        rows[i:, i] = 0.3
    cols = structure.direction_columns(9)
    assert cols == list(range(1, 9))
    assert structure.features(rows, cols)["axis_fraction"] == 1.0
    together = np.zeros((9, 9))
    together[:, 0] = 0.05
    together[:, 1:] = np.linspace(0, 0.4, 9)[:, None]   # every knob moving together: diagonal
    assert structure.features(together, cols)["axis_fraction"] == 0.0


def test_strokes_and_pauses_are_counted_from_long_gaps():
    rows = _rows(_line((0, 0), (1, 0), 10), pauses=(3, 7))
    lengths, pauses = structure.strokes(rows)
    assert lengths.tolist() == [3, 4, 3]
    assert pauses.tolist() == [1.0, 1.0]
    rows[0, 0] = 5.0                              # a pause before the first event is not a break in playing
    assert structure.strokes(rows)[0].tolist() == [3, 4, 3]
    rows[5, 0] = STROKE_GAP                       # exactly the gap is still the same stroke
    assert structure.strokes(rows)[0].tolist() == [3, 4, 3]


def test_ks_statistic_of_known_samples():
    assert structure.ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert structure.ks_statistic([0, 0, 0], [1, 1]) == 1.0
    assert structure.ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)
    assert structure.ks_statistic([], [1.0]) == 1.0 and structure.ks_statistic([], []) == 0.0


def test_structure_score_tells_scribbles_from_strokes_where_w1_cannot():
    from imps_train.temperatures import distances
    rng = np.random.default_rng(0)
    cols = structure.direction_columns(4)

    def strokes_like_a_person(n_strokes):
        runs = []
        for _ in range(n_strokes):
            start = rng.uniform(0.1, 0.9, 2)
            horizontal = rng.random() < 0.5
            end = start.copy()
            end[0 if horizontal else 1] = rng.uniform(0.1, 0.9)
            runs.append(_line(start, end, 25))
        rows = _rows(np.concatenate(runs), pauses=range(25, 25 * n_strokes, 25))
        return rows

    real = strokes_like_a_person(40)
    also_real = strokes_like_a_person(40)
    # The same points visited in a shuffled order, with the same timing: the values match exactly,
    # but the moves point every way (half of random directions fall within 22.5 degrees of an axis),
    # not along the axes.
    scribble = real.copy()
    scribble[:, 1:3] = real[rng.permutation(len(real)), 1:3]
    same = structure.compare(also_real, real, cols)
    assert same["structure"] < 0.2 and same["axis_generated"] == 1.0
    bad = structure.compare(scribble, real, cols)
    assert bad["d_axis"] > 0.4 and bad["structure"] > same["structure"] + 0.2
    assert distances(scribble, [real])["w1_values"] == pytest.approx(0.0, abs=1e-9)   # W1 sees nothing
    # No pauses at all: one endless stroke is as far from real strokes as can be.
    endless = real.copy()
    endless[:, 0] = 0.02
    result = structure.compare(endless, real, cols)
    assert result["d_stroke"] == 1.0 and result["d_pause"] == 1.0 and result["pause_rate_generated"] == 0


def test_held_out_sets_choose_and_score_on_different_performances():
    from imps_train.temperatures import TemperatureError, held_out_sets
    perfs = [np.full((n, 4), i, np.float32) for i, n in enumerate([3000, 700, 1800, 2600, 560])]
    choose, score, choose_perfs, score_perfs = held_out_sets(perfs, 50, 500, 3)
    chosen_from = {g.performance for g in choose}
    scored_from = {g.performance for g in score}
    assert chosen_from and scored_from and not chosen_from & scored_from
    assert chosen_from | scored_from == {0, 1, 2, 3, 4}
    # The whole performances given as each set's real playing are exactly its own ones.
    assert sorted(int(p[0, 0]) for p in choose_perfs) == sorted(chosen_from)
    assert sorted(int(p[0, 0]) for p in score_perfs) == sorted(scored_from)
    for segs in (choose, score):
        for g in segs:                                             # every priming comes from its performance
            assert np.all(g.prime[:, 0] == g.performance) and len(g.prime) == 50 and len(g.real_next) == 500
        spans = {}
        for g in segs:                                             # and no two primings share a row
            spans.setdefault(g.performance, []).append((g.start, g.start + 550))
        for ranges in spans.values():
            ranges.sort()
            assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))
    assert sum(1 for g in choose + score if g.performance == 0) == 3      # 3000 rows: room for three
    assert sum(1 for g in choose + score if g.performance == 1) == 1      # 700 rows: room for one
    with pytest.raises(TemperatureError, match="need at least 2 held-out performances"):
        held_out_sets(perfs[:1], 50, 500, 3)
    with pytest.raises(TemperatureError, match="need at least 2 held-out performances"):
        held_out_sets([perfs[1], perfs[4]], 50, 600, 3)


def test_choosing_by_both_scores_takes_the_best_sum_of_ranks():
    from imps_train.temperatures import Cell, choose
    def cell(name, w1, st):
        return Cell(name, 1.0, None, {}, {"w1_mean": w1, "structure": st}, {})
    cells = [cell(1, 0.05, 0.60),     # best W1, worst structure: ranks 0 + 2
             cell(2, 0.07, 0.30),     # second on both: ranks 1 + 1
             cell(3, 0.09, 0.20)]     # worst W1, best structure: ranks 2 + 0
    assert choose(cells, "w1_mean").pi_temperature == 1
    assert choose(cells, "structure").pi_temperature == 3
    assert choose(cells, "both").pi_temperature == 1          # all tie on 2: the lowest W1 wins
    cells[0].choose["structure"] = 0.25                         # now second on structure: 0 + 1
    assert choose(cells, "both").pi_temperature == 1
    cells[1].choose["structure"] = 0.10                         # 1 + 0 vs 0 + 2: cell 2
    cells[0].choose["structure"] = 0.65
    assert choose(cells, "both").pi_temperature == 2
