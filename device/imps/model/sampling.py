"""Sample a gesture row from the mixture the model predicts (both heads, heads.py).

The mixture component is chosen from softmax(logits / pi_temperature); the
row is then drawn from that component's diagonal Gaussian with variance
sigma^2 * sigma_temperature (the published MDRNN convention). dt is kept in
[MIN_DT, MAX_DT] (1 ms to 60 s; NaN and inf included) and controls are clipped
to [0, 1] (the row convention in rows.py), whatever the model or the
temperatures produce.

The moves head (``MovesSampler``) draws dt from its own mixture over log
seconds, then each control: it moves with probability sigmoid(move logit /
pi_temperature), else stays exactly at the last row's value; a move's change
(in log-odds) comes from the control's mixture, its component chosen with
pi_temperature and its spread scaled by sqrt(sigma_temperature), as above.

Why plain Python: for K*D up to a few hundred, list arithmetic beats numpy's
per-call overhead several times over. Random numbers come from a seeded numpy
generator in blocks of 4096, so a sample costs list lookups, not RNG calls.
"""
from __future__ import annotations

import math

import numpy as np

from .heads import EDGE
from .rows import MAX_DT, MIN_DT, clip01

BLOCK = 4096


class Sampler:
    def __init__(self, dimension: int, mixtures: int, input_scale: float = 10.0,
                 pi_temperature: float = 1.0, sigma_temperature: float = 0.01, seed: int | None = None):
        self.dimension = dimension
        self.mixtures = mixtures
        self.input_scale = float(input_scale)
        self.pi_temperature = pi_temperature
        self.sigma_temperature = sigma_temperature
        self.seed(seed)

    # Temperatures are set rarely and read every sample: keep the derived factors ready.
    @property
    def pi_temperature(self) -> float:
        return self._pi_temperature

    @pi_temperature.setter
    def pi_temperature(self, value: float) -> None:
        self._pi_temperature = float(value)
        self._inv_t = 1.0 / max(self._pi_temperature, 1e-6)

    @property
    def sigma_temperature(self) -> float:
        return self._sigma_temperature

    @sigma_temperature.setter
    def sigma_temperature(self, value: float) -> None:
        self._sigma_temperature = float(value)
        self._inv_scale = 1.0 / self.input_scale
        self._spread = math.sqrt(max(self._sigma_temperature, 0.0)) * self._inv_scale

    def seed(self, seed: int | None) -> None:
        self._rng = np.random.default_rng(seed)
        self._uniform, self._u = [], 0
        self._normal, self._n = [], 0

    def _normals(self, count: int):
        if self._n + count > len(self._normal):
            self._normal, self._n = self._rng.standard_normal(max(BLOCK, count)).tolist(), 0
        start = self._n
        self._n += count
        return self._normal, start

    def choose(self, logits) -> int:
        """A component index from softmax(logits / pi_temperature); always valid."""
        inv_t = self._inv_t
        top = max(logits)
        exp = math.exp
        weights = [exp((v - top) * inv_t) for v in logits]
        if self._u >= len(self._uniform):
            self._uniform, self._u = self._rng.random(BLOCK).tolist(), 0
        u = self._uniform[self._u] * sum(weights)
        self._u += 1
        for k, w in enumerate(weights):
            u -= w
            if u < 0.0:
                return k
        # Rounding left u >= 0, or the logits were not finite: take the most likely component.
        return max(range(len(weights)), key=weights.__getitem__)

    def sample(self, params, current=None) -> list[float]:
        """One row [dt, x1..xn] from flat params [mus | sigmas | logits] (scaled units).
        ``current`` (the last row fed, scaled) is the moves head's; this head ignores it.

        ``params`` is anything whose slices are lists (a list, or a ctypes float
        array over the interpreter's output, as MDRNN passes); numpy arrays are converted.
        """
        if hasattr(params, "tolist"):
            params = params.reshape(-1).tolist()
        d, k = self.dimension, self.mixtures
        kd = k * d
        base = self.choose(params[2 * kd:2 * kd + k]) * d
        mus = params[base:base + d]
        sigmas = params[kd + base:kd + base + d]
        inv, spread = self._inv_scale, self._spread
        z, n = self._normals(d)
        row = [mu * inv + sg * spread * e for mu, sg, e in zip(mus, sigmas, z[n:n + d])]
        dt = row[0]
        row[1:] = [clip01(v) for v in row[1:]]
        if not dt >= MIN_DT:  # also catches NaN
            row[0] = MIN_DT
        elif dt > MAX_DT:  # also catches inf
            row[0] = MAX_DT
        return row


LOG_MIN_DT, LOG_MAX_DT = math.log(MIN_DT), math.log(MAX_DT)
LOGIT_FAR_LOW, LOGIT_FAR_HIGH = 2 * math.log(EDGE / (1 - EDGE)), 2 * math.log((1 - EDGE) / EDGE)


class MovesSampler(Sampler):
    """The moves head's sampler: same seed, temperatures and blocks of random numbers."""

    def _uniform01(self) -> float:
        if self._u >= len(self._uniform):
            self._uniform, self._u = self._rng.random(BLOCK).tolist(), 0
        self._u += 1
        return self._uniform[self._u - 1]

    def sample(self, params, current=None) -> list[float]:
        """One row from the moves head's params; ``current`` is the last row fed in scaled units
        (the model's input buffer): the controls that stay keep its values."""
        if hasattr(params, "tolist"):
            params = params.reshape(-1).tolist()
        d, k = self.dimension, self.mixtures
        spread = math.sqrt(max(self._sigma_temperature, 0.0))
        inv_t, scale, exp, log = self._inv_t, self.input_scale, math.exp, math.log
        z, n = self._normals(d)
        j = self.choose(params[2 * k:3 * k])
        log_dt = params[j] + params[k + j] * spread * z[n]
        if not log_dt > LOG_MIN_DT:         # also catches NaN
            row = [MIN_DT]
        elif log_dt >= LOG_MAX_DT:
            row = [MAX_DT]
        else:
            row = [exp(log_dt)]
        block = 1 + 3 * k
        for i in range(d - 1):
            here = clip01(current[i + 1] / scale) if current is not None else 0.0
            b = 3 * k + i * block
            m = params[b] * inv_t
            p_move = 1.0 / (1.0 + exp(-m)) if m > -700 else 0.0
            if self._uniform01() >= p_move:
                row.append(here)            # stays exactly where it is
                continue
            j = self.choose(params[b + 1 + 2 * k:b + block])
            held = EDGE if here < EDGE else (1 - EDGE if here > 1 - EDGE else here)
            x = log(held / (1 - held)) + params[b + 1 + j] + params[b + 1 + k + j] * spread * z[n + 1 + i]
            if not x == x:                  # NaN: the model is broken; stay
                row.append(here)
                continue
            # Beyond twice the edge's log-odds (1.5e-5 from 0 or 1) a float would round to the edge itself.
            x = LOGIT_FAR_LOW if x < LOGIT_FAR_LOW else (LOGIT_FAR_HIGH if x > LOGIT_FAR_HIGH else x)
            row.append(1.0 / (1.0 + exp(-x)))
        return row
