"""Check a model file against the contract, optionally against a reference trace.

Used by the workstation's export (in a separate process, with the device
runtime) and by hand before deploying a model to a box.
"""
from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .runtime import MDRNN


def check_model(path, reference=None, tolerance: float = 1e-4, runtime: str = "auto",
                dimension: int | None = None) -> str:
    """A one-line report, or ModelError naming the file and the problem."""
    model = MDRNN(path, dimension=dimension, runtime=runtime)
    s = model.shape
    line = (f"{path}: OK with {model.runtime}: D={s.dimension} units={s.units} layers={s.layers} "
            f"mixtures={s.mixtures} scale={s.input_scale:g} pi_temperature={model.pi_temperature:g} "
            f"sigma_temperature={model.sigma_temperature:g} (from {model.settings_source}; "
            f"state paired by {model.state_pairing}); {model.head} head")
    if reference is None:
        row = np.zeros(s.dimension, np.float32)
        row[0] = 0.05
        for _ in range(10):
            params = model.step(row)
            if not np.isfinite(params).all():
                raise ModelError(f"model {path}: outputs NaN or inf")
        return line
    with np.load(reference, allow_pickle=False) as ref:
        rows, expected = ref["rows"], ref["params"]
    worst = 0.0
    for i, row in enumerate(rows):
        got = model.step(row)
        err = float(np.max(np.abs(got - expected[i])))
        worst = max(worst, err)
        if not err <= tolerance:
            raise ModelError(f"model {path}: step {i} differs from the reference by {err:.3g} "
                             f"(tolerance {tolerance:g}); the conversion is broken")
    return f"{line}; matches reference over {len(rows)} steps (max error {worst:.2e})"
