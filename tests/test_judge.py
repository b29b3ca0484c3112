"""`imps-train judge`: the feature table tells a one-knob-at-a-time player from a random walk,
the fair likelihood is a probability, and the whole command runs on real held-out playing."""
import json
import math

import numpy as np
import pytest

from imps_train import judge
from support import ROOT

MODELS = ROOT / "device" / "imps" / "models"


def one_control_player(events=3000, controls=8, seed=0) -> np.ndarray:
    """Turns one knob at a time in ramps of 0.02-0.04 per event, leaves the others where they are,
    and now and then rests (dt 0.6-2 s) between ramps without touching anything."""
    rng = np.random.default_rng(seed)
    rows, values = [], np.full(controls, 0.5)
    while len(rows) < events:
        knob = rng.integers(controls)
        if rng.random() < 0.3:
            rows.append([rng.uniform(0.6, 2.0), *values])    # a rest: nothing moves
        direction = 1.0 if values[knob] < 0.5 else -1.0
        for _ in range(rng.integers(5, 12)):
            values[knob] += direction * rng.uniform(0.02, 0.04)
            rows.append([rng.uniform(0.01, 0.05), *values])
    return np.clip(np.array(rows[:events]), 0, 1)


def random_walk(events=3000, controls=8, seed=0) -> np.ndarray:
    """Every knob takes a Gaussian step at every event (reflected at 0 and 1); dt sometimes long."""
    rng = np.random.default_rng(seed)
    walk = 0.5 + np.cumsum(rng.normal(0, 0.04, (events, controls)), axis=0)
    values = 1 - np.abs(np.mod(walk, 2) - 1)
    return np.column_stack([rng.exponential(0.2, events), values])


def test_a_one_control_player_scores_near_one_and_a_random_walk_near_zero():
    one = judge.features(one_control_player())
    walk = judge.features(random_walk())
    assert one["one_control"] > 0.9
    assert walk["one_control"] < 0.05
    assert 0.9 < one["moving"] < 1.1 and walk["moving"] > 5
    assert one["rest_change"] < 0.01 < 0.1 < walk["rest_change"]
    assert one["ac1"] > 0.5 > walk["ac1"]          # ramps are smooth, a walk's steps are not


def test_edges_rests_and_timing_are_counted_as_defined():
    rows = np.array([[0.1, 0.0, 0.5], [0.1, 0.5, 1.0], [1.0, 0.5, 1.0], [0.1, 0.6, 1.0], [2.0, 0.6, 1.0]])
    f = judge.features(rows, reference=rows)
    assert f["edge_1"] == pytest.approx(1 / 5) and f["edge_2"] == pytest.approx(4 / 5)
    assert f["rests"] == 2 and f["rest_median"] == pytest.approx(1.5) and f["rest_change"] == 0.0
    assert f["events_per_s"] == pytest.approx(5 / 3.3)
    assert f["w1_dt"] == 0.0 and f["w1_values"] == 0.0
    assert f["one_control"] == pytest.approx(1 / 4) and f["moving"] == pytest.approx(3 / 4)


def test_the_lead_is_the_callers_last_control_against_the_answers_first():
    call = np.array([[0.1, 0.2, 0.2, 0.2], [0.1, 0.5, 0.2, 0.2], [0.1, 0.5, 0.2, 0.6]])   # last moved: control 2
    hit = np.array([[0.1, 0.5, 0.2, 0.7], [0.1, 0.9, 0.2, 0.7]])
    miss = np.array([[0.1, 0.5, 0.2, 0.6], [0.1, 0.5, 0.9, 0.6]])
    assert judge.lead_share([(call, hit), (call, miss)]) == 0.5


def test_the_likelihood_is_a_probability_over_the_instruments_grid():
    """One 2-D component: the probability of every cell of the grid sums to 1 (the edge cells own the
    tails the box's clip folds onto them), and a sharp component on the row gives it ~1."""
    scale, d, k = 10.0, 2, 1
    params = np.array([0.2 * scale, 0.97 * scale, 0.05 * scale, 0.1 * scale, 0.0])   # mus | sigmas | logit
    total = 0.0
    for dt_bin in range(200):
        for level in range(judge.LEVELS + 1):
            row = np.array([(dt_bin + 0.5) * judge.DT_BIN, level / judge.LEVELS])
            total += 2 ** judge.classic_bin_log2_probability(params, row, d, k, scale, 1.0, 1.0)
    assert total == pytest.approx(1.0, abs=1e-3)            # dt beyond 2 s: ~0 under this component
    sharp = np.array([0.205 * scale, 64 / 127 * scale, 1e-4, 1e-4, 0.0])
    assert judge.classic_bin_log2_probability(sharp, np.array([0.205, 64 / 127]), d, k, scale, 1, 1) > -1e-6


def test_the_moves_heads_likelihood_is_a_probability_too():
    """dt mixture x (stay, or move by a log-odds change): every cell of the grid sums to 1, and a
    control that surely stays puts all its mass on the previous value's cell."""
    k, d = 2, 2
    params = np.array([math.log(0.05), math.log(0.3), 0.3, 0.3, 0.0, 0.5,    # dt: mu, sigma, logits
                       0.3, 0.2, -1.0, 0.5, 1.5, 0.1, -0.2])               # move logit, mu, sigma, logits
    previous = np.array([0.1, 40 / 127])
    total = 0.0
    for dt_bin in range(200):
        for level in range(judge.LEVELS + 1):
            row = np.array([(dt_bin + 0.5) * judge.DT_BIN, level / judge.LEVELS])
            total += 2 ** judge.moves_bin_log2_probability(params, row, previous, d, k, 1.0, 1.0)
    assert total == pytest.approx(1.0, abs=2e-3)
    stays = params.copy()
    stays[6] = -50.0
    same = judge.moves_bin_log2_probability(stays, np.array([0.05, 40 / 127]), previous, d, k, 1, 1)
    other = judge.moves_bin_log2_probability(stays, np.array([0.05, 41 / 127]), previous, d, k, 1, 1)
    assert same > other + 30


def test_the_judge_command_plays_the_bundled_model_against_real_held_out_playing(tmp_path, lightpad_12k):
    from imps_train.cli import main
    data = lightpad_12k.save(tmp_path / "12k.npz")
    out = tmp_path / "judge"
    assert main(["judge", str(MODELS / "default.tflite"), str(data), "-o", str(out), "--seeds", "2",
                 "--seconds", "10", "--windows", "4", "--likelihood-rows", "300", "--val-fraction", "0.5", "-q"]) == 0
    summary = json.loads((out / "judge.json").read_text())
    assert summary["head"] == "classic" and summary["setup"]["windows"] == 4
    table = summary["table"]
    assert set(table) == {"player", "reference", "free", "answers", "real_answers"}
    for column in table.values():
        assert 0 <= column["one_control"] <= 1 and math.isfinite(column["events_per_s"])
        assert 0 <= column["axis"] <= 1 and math.isfinite(column["w1_values"])
    assert table["player"]["w1_dt"] == 0.0 and table["reference"]["w1_dt"] > 0
    free_seconds = table["free"]["events"] / table["free"]["events_per_s"]
    assert 20 <= free_seconds < 30        # two seeds of 10 s each (the last event may run over, by a rest at most)
    bits = summary["heldout_bits"]
    assert set(bits) == {"1,1", "1,2"} and all(0 < v < 40 for v in bits.values())
    text = (out / "judge.md").read_text()
    assert "events where exactly one control moves" in text and "x/y moves along one axis" in text
    import matplotlib.image
    for picture in ("traces.png", "xy.png"):
        assert matplotlib.image.imread(out / picture).shape[1] > 800


def test_a_model_of_another_dimension_is_one_clear_error(tmp_path, lightpad_12k):
    data = lightpad_12k.save(tmp_path / "12k.npz")
    from imps.model.dataset import load_dataset
    with pytest.raises(judge.JudgeError, match="9-D but the dataset is 4-D"):
        judge.judge(MODELS / "xtouch-9d.tflite", load_dataset(data), tmp_path / "j", progress=False)
