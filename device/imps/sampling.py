"""Sample a gesture row from the mixture the model predicts.

The mixture component is chosen from softmax(logits / pi_temperature); the
row is then drawn from that component's diagonal Gaussian with variance
sigma^2 * sigma_temperature (the published MDRNN convention). dt is at least
1 ms and controls are clipped to [0, 1] (the row convention in rows.py).

Why plain Python: for K*D up to a few hundred, list arithmetic beats numpy's
per-call overhead several times over. Random numbers come from a seeded numpy
generator in blocks of 4096, so a sample costs list lookups, not RNG calls.
"""
from __future__ import annotations

import math

import numpy as np

from .rows import CONTROL_MAX, CONTROL_MIN, MIN_DT

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

    def seed(self, seed: int | None) -> None:
        self._rng = np.random.default_rng(seed)
        self._uniform, self._u = [], 0
        self._normal, self._n = [], 0

    def _uniforms(self):
        self._uniform, self._u = self._rng.random(BLOCK).tolist(), 0
        return self._uniform

    def _normals(self, count: int):
        if self._n + count > len(self._normal):
            self._normal, self._n = self._rng.standard_normal(max(BLOCK, count)).tolist(), 0
        start = self._n
        self._n += count
        return self._normal, start

    def choose(self, logits) -> int:
        """A component index from softmax(logits / pi_temperature); always valid."""
        t = self.pi_temperature if self.pi_temperature > 1e-6 else 1e-6
        top = max(logits)
        exp = math.exp
        weights = [exp((v - top) / t) for v in logits]
        if self._u >= len(self._uniform):
            self._uniforms()
        u = self._uniform[self._u] * sum(weights)
        self._u += 1
        for k, w in enumerate(weights):
            u -= w
            if u < 0.0:
                return k
        # Rounding left u >= 0, or the logits were not finite: take the most likely component.
        return max(range(len(weights)), key=weights.__getitem__)

    def sample(self, params) -> list[float]:
        """One row [dt, x1..xn] from flat params [mus | sigmas | logits] (scaled units)."""
        p = params.tolist() if hasattr(params, "tolist") else list(params)
        d, k = self.dimension, self.mixtures
        kd = k * d
        base = self.choose(p[2 * kd:2 * kd + k]) * d
        inv = 1.0 / self.input_scale
        spread = math.sqrt(self.sigma_temperature if self.sigma_temperature > 0.0 else 0.0) * inv
        z, n = self._normals(d)
        row = [(p[base + i] * inv + p[kd + base + i] * spread * z[n + i]) for i in range(d)]
        if not row[0] >= MIN_DT:  # also catches NaN
            row[0] = MIN_DT
        for i in range(1, d):
            v = row[i]
            if not v >= CONTROL_MIN:
                row[i] = CONTROL_MIN
            elif v > CONTROL_MAX:
                row[i] = CONTROL_MAX
        return row
