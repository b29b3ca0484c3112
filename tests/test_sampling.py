import math

import numpy as np
import pytest

from imps.model.model_file import split_params
from imps.model.rows import MIN_DT
from imps.model.sampling import Sampler


def params_for(mus, sigmas, logits):
    return np.concatenate([np.ravel(mus), np.ravel(sigmas), logits]).astype(np.float32)


def test_chooses_components_by_softmax_with_temperature():
    s = Sampler(2, 3, input_scale=1.0, seed=1)
    logits = [0.0, math.log(3.0), -50.0]          # p = 1/4, 3/4, ~0
    counts = np.bincount([s.choose(logits) for _ in range(20000)], minlength=3)
    assert counts[2] == 0
    assert counts[1] / counts.sum() == pytest.approx(0.75, abs=0.02)
    s.pi_temperature = 1000.0                     # very high temperature: close to uniform
    counts = np.bincount([s.choose(logits) for _ in range(20000)], minlength=3)
    assert (counts / counts.sum()).min() > 0.3


def test_always_a_valid_component_even_with_bad_numbers():
    s = Sampler(2, 3, seed=2)
    for logits in ([float("nan")] * 3, [float("inf"), 0.0, 0.0], [-1e30, -1e30, -1e30], [1e-300] * 3):
        assert 0 <= s.choose(logits) < 3


def test_sigma_temperature_scales_the_variance():
    mus = [[0.5, 0.5]]
    sigmas = [[0.2, 0.2]]
    p = params_for(mus, sigmas, [0.0])
    s = Sampler(2, 1, input_scale=1.0, sigma_temperature=0.25, seed=3)
    xs = np.array([s.sample(p)[1] for _ in range(20000)])
    assert xs.std() == pytest.approx(0.2 * math.sqrt(0.25), rel=0.05)
    assert xs.mean() == pytest.approx(0.5, abs=0.01)


def test_sigma_temperature_and_input_scale_together():
    """The model's scaled units: mu / scale and sigma * sqrt(sigma temperature) / scale."""
    p = params_for([[3.0, 4.0]], [[2.0, 1.0]], [0.0])
    s = Sampler(2, 1, input_scale=10.0, sigma_temperature=0.25, seed=6)
    xs = np.array([s.sample(p) for _ in range(20000)])
    assert xs[:, 0].mean() == pytest.approx(0.3, abs=0.005) and xs[:, 1].mean() == pytest.approx(0.4, abs=0.005)
    assert xs[:, 0].std() == pytest.approx(2.0 * 0.5 / 10, rel=0.05)
    assert xs[:, 1].std() == pytest.approx(1.0 * 0.5 / 10, rel=0.05)
    s.sigma_temperature = 1.0                      # changed live: the new spread applies at once
    xs = np.array([s.sample(p)[1] for _ in range(20000)])
    assert xs.std() == pytest.approx(1.0 / 10, rel=0.05)


def test_input_scale_divides_mus_and_sigmas():
    p = params_for([[2.0, 5.0]], [[1.0, 1.0]], [0.0])
    s = Sampler(2, 1, input_scale=10.0, sigma_temperature=0.0, seed=4)
    assert s.sample(p) == pytest.approx([0.2, 0.5])


def test_clips_dt_and_controls_and_is_seeded():
    p = params_for([[-3.0, 7.0, -2.0]], [[0.1, 0.1, 0.1]], [0.0])
    row = Sampler(3, 1, input_scale=1.0, seed=5).sample(p)
    assert row[0] == MIN_DT and row[1] == 1.0 and row[2] == 0.0
    nan = params_for([[float("nan"), 0.5, 0.5]], [[0.1, 0.1, 0.1]], [0.0])
    assert Sampler(3, 1, seed=5).sample(nan)[0] == MIN_DT
    rng = np.random.default_rng(0)
    q = params_for(rng.random((5, 3)), rng.random((5, 3)), rng.random(5))
    a = [Sampler(3, 5, seed=9).sample(q) for _ in range(3)]
    b = [Sampler(3, 5, seed=9).sample(q) for _ in range(3)]
    assert a == b
    assert Sampler(3, 5, seed=9).sample(q) != Sampler(3, 5, seed=10).sample(q)


def test_split_params_layout_is_component_major():
    p = np.arange(2 * 3 * 4 + 3, dtype=np.float32)
    mus, sigmas, logits = split_params(p, 4, 3)
    assert mus[1].tolist() == [4, 5, 6, 7] and sigmas[0, 0] == 12 and logits.tolist() == [24, 25, 26]
