"""The moves head (device/imps/model/heads.py): its sampler keeps still controls exactly still and
moved ones inside (0, 1) without a clip, its training and export run on real data, the .tflite
matches Keras in both device runtimes, and the sidecar names it while models without one stay classic."""
import json
import math
import subprocess

import numpy as np
import pytest

from imps.errors import ModelError
from imps.model.heads import EDGE, mixtures_from_size, params_size
from imps.model.sampling import MovesSampler
from support import ROOT

K = 2


def moves_params(d: int, move_logits, change_mu=0.0, change_sigma=0.1, dt=0.2, dt_sigma=1e-3) -> list:
    """heads.py's layout: dt [mu | sigma | logits], then per control [move logit | mu | sigma | logits]."""
    p = [math.log(dt)] * K + [dt_sigma] * K + [0.0] * K
    for m in move_logits:
        p += [m] + [change_mu] * K + [change_sigma] * K + [0.0] * K
    assert len(p) == params_size("moves", d, K)
    return p


def test_the_layout_size_round_trips_and_a_wrong_size_is_one_clear_error():
    for d in (2, 4, 9):
        for k in (1, 5):
            assert mixtures_from_size("moves", params_size("moves", d, k), d) == k
            assert mixtures_from_size("classic", params_size("classic", d, k), d) == k
    with pytest.raises(ModelError, match="does not fit the moves head"):
        mixtures_from_size("moves", params_size("moves", 9, 5) + 1, 9)


def test_controls_that_stay_keep_their_exact_value_and_one_that_moves_moves_alone():
    s = MovesSampler(4, K, input_scale=10.0, pi_temperature=1.0, sigma_temperature=1.0, seed=0)
    current = [0.0, 3.0, 7.5, 10.0]                      # scaled: 0.3, 0.75, 1.0
    still = s.sample(moves_params(4, [-60, -60, -60]), current)
    assert still[1:] == [0.3, 0.75, 1.0] and still[0] == pytest.approx(0.2, rel=0.01)
    for _ in range(200):
        row = s.sample(moves_params(4, [-60, 60, -60], change_mu=0.5), current)
        assert row[1] == 0.3 and row[3] == 1.0 and row[2] != 0.75
        assert 0.0 < row[2] < 1.0


def test_moved_values_never_pile_at_the_edges():
    """A change far beyond the edge lands just inside it, not on it (no clip)."""
    s = MovesSampler(3, K, sigma_temperature=1.0, seed=1)
    rows = np.array([s.sample(moves_params(3, [60, 60], change_mu=m, change_sigma=2.0), [0.0, 9.9, 0.1])
                     for m in (-30.0, 30.0) for _ in range(500)])
    assert ((rows[:, 1:] > 0.0) & (rows[:, 1:] < 1.0)).all()
    assert (rows[:500, 1:] < EDGE).mean() > 0.9 and (rows[500:, 1:] > 1 - EDGE).mean() > 0.9


def test_pi_temperature_tempers_how_often_controls_move_and_the_sampler_is_seeded():
    def share(t):
        s = MovesSampler(9, K, pi_temperature=t, seed=3)
        rows = np.array([s.sample(moves_params(9, [-2.0] * 8), [0.0] + [5.0] * 8) for _ in range(2000)])
        return float(np.mean(rows[:, 1:] != 0.5))
    cold, warm = share(0.5), share(4.0)
    assert cold == pytest.approx(1 / (1 + math.exp(4)), abs=0.01)
    assert warm == pytest.approx(1 / (1 + math.exp(0.5)), abs=0.02)
    a, b = MovesSampler(9, K, seed=7), MovesSampler(9, K, seed=7)
    p = moves_params(9, [0.0] * 8)
    assert [a.sample(p, [0.0] * 9) for _ in range(5)] == [b.sample(p, [0.0] * 9) for _ in range(5)]


def test_dt_comes_from_its_own_mixture_and_stays_in_range():
    s = MovesSampler(3, K, sigma_temperature=1.0, seed=0)
    rows = [s.sample(moves_params(3, [-60, -60], dt=0.5, dt_sigma=0.3), [0.0, 5.0, 5.0]) for _ in range(3000)]
    dts = np.array([r[0] for r in rows])
    assert np.median(dts) == pytest.approx(0.5, rel=0.05)
    huge = s.sample(moves_params(3, [0, 0], dt=1e9), [0.0, 5.0, 5.0])
    assert huge[0] == 60.0
    broken = s.sample([float("nan")] * params_size("moves", 3, K), [0.0, 5.0, 5.0])
    assert broken[0] == 0.001 and all(0.0 <= v <= 1.0 for v in broken[1:])


# -- trained, exported and run on real data --------------------------------------------------------

@pytest.fixture(scope="module")
def moves_model(tmp_path_factory, lightpad_12k):
    from imps_train.export import export
    from imps_train.train import TrainConfig, train
    out = tmp_path_factory.mktemp("moves")
    config = TrainConfig(size="xxs", epochs=1, windows_per_epoch=128, val_windows=64, seq_len=20, batch_size=32,
                         head="moves")
    train(lightpad_12k, out / "run", config, progress=False)
    export(out / "run", out / "moves.tflite", pi_temperature=1.0, sigma_temperature=1.0)
    return out / "moves.tflite"


@pytest.mark.parametrize("runtime", ["tflite-runtime", "ai-edge-litert"])
def test_the_moves_export_matches_keras_in_both_device_runtimes(moves_model, device_python, runtime, lightpad_12k):
    from imps_train import mdrnn
    from imps_train.export import keras_trace, verify
    from imps_train.train import load_run
    run_dir = moves_model.parent / "run"
    trained = mdrnn.build_training_model(4, 16, 2, 5, 20, learning_rate=None, head="moves")
    trained.load_weights(str(run_dir / load_run(run_dir)["weights"]))
    step = mdrnn.build_inference_model(4, 16, 2, 5, head="moves")
    mdrnn.copy_weights(trained, step, head="moves")
    trace = keras_trace(step, lightpad_12k.rows[:100], 16, 2, 10.0)
    assert trace["params"].shape == (100, params_size("moves", 4, 5))
    report = verify(moves_model, trace, runtime, python=device_python)
    assert f"OK with {runtime}" in report and "; moves head" in report and "over 100 steps" in report
    trace["params"] = trace["params"] + 1e-3
    with pytest.raises(ModelError, match="differs from the reference"):
        verify(moves_model, trace, runtime, python=device_python)


def test_the_public_way_to_generate_is_the_same_for_the_moves_head(moves_model, device_python):
    """reset(), step(row), sample() and sampler.seed(n), in the device environment: valid rows,
    reproducible by seed, and stills that are exact (the head's point)."""
    child = f"""
import json
from imps.model.runtime import MDRNN
m = MDRNN({str(moves_model)!r}, runtime="tflite-runtime")
def run(seed):
    m.reset(); m.sampler.seed(seed); rows = []
    for _ in range(300):
        r = m.sample(); rows.append(r); m.step(r)
    return rows
print(json.dumps({{"head": m.head, "a": run(5), "b": run(5)}}))
"""
    done = subprocess.run([device_python, "-c", child], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    rows = np.array(out["a"])
    assert out["head"] == "moves" and out["a"] == out["b"]
    assert (rows[:, 0] >= 0.001).all() and (rows[:, 0] <= 60).all()
    assert ((rows[:, 1:] >= 0) & (rows[:, 1:] <= 1)).all()
    still = np.diff(rows[:, 1:], axis=0) == 0
    assert still.any()          # some controls stay exactly where they were (a classic head never does)


def test_the_sidecar_names_the_head_and_models_without_one_stay_classic(moves_model, device_python):
    assert json.loads(moves_model.with_suffix(".json").read_text())["head"] == "moves"
    bundled = ROOT / "device" / "imps" / "models" / "default.tflite"
    for path, head in ((moves_model, "moves"), (bundled, "classic")):
        done = subprocess.run([device_python, "-m", "imps", "check-model", str(path)], capture_output=True,
                              text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        assert f"; {head} head" in done.stdout


def test_an_unknown_head_in_a_sidecar_is_one_clear_error(moves_model, tmp_path, device_python):
    import shutil
    copy = tmp_path / "odd.tflite"
    shutil.copy(moves_model, copy)
    sidecar = json.loads(moves_model.with_suffix(".json").read_text()) | {"head": "tokens"}
    copy.with_suffix(".json").write_text(json.dumps(sidecar))
    done = subprocess.run([device_python, "-m", "imps", "check-model", str(copy)], capture_output=True, text=True,
                          cwd=ROOT)
    assert done.returncode != 0 and "head must be one of classic, moves, got 'tokens'" in done.stdout + done.stderr
