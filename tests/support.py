"""Helpers the tests import by name (conftest.py holds only fixtures).

They live here, not in conftest.py, because tests/vm has a conftest.py of its own: once both are
collected, the module name `conftest` means whichever was imported last.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "training" / "datasets"


def wait_for(pred, timeout: float = 15.0, step: float = 0.01) -> bool:
    """Poll pred() until it holds or timeout passes; returns pred(). Generous by default:
    tests run on busy machines (both cores saturated), so wait for the condition, never a fixed time."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def published(name: str):
    """Performances from a published (pickled) dataset: a trusted file of this project."""
    with np.load(DATASETS / name, allow_pickle=True) as z:
        return list(z["perfs"])


def wait_until(condition, timeout: float = 15.0, what: str = "condition") -> None:
    """Like wait_for, but a timeout fails the test with what was awaited."""
    if not wait_for(condition, timeout):
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def stuck_notes(messages):
    """(channel, note) still sounding after ``messages``: every note-on needs its note-off."""
    sounding = set()
    for m in messages:
        if m.type == "note_on" and m.velocity > 0:
            sounding.add((m.channel, m.note))
        elif m.type in ("note_on", "note_off"):
            sounding.discard((m.channel, m.note))
    return sounding


def box_overrides(tmp_path: Path, sound_port: int, mode: str = "user", model=None, **sections) -> dict:
    """Config overrides for a real box in a test: OSC on free ports, sound to ``sound_port``, logs
    in ``tmp_path``, a seeded sampler (``model``: run it on ai-edge-litert); ``sections`` add to these."""
    overrides = {"model": {"seed": 1}, "engine": {"mode": mode},
                 "osc": {"interface_port": 0, "control_port": 0, "sound_port": sound_port},
                 "log": {"directory": str(tmp_path / "logs")}}
    if model is not None:
        overrides["model"].update(path=str(model), runtime="ai-edge-litert")
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return overrides


def performance(n=400, dt=0.01, d=3):
    """A smooth synthetic performance: n rows of (dt, d slow sines in [0, 1])."""
    t = np.arange(n)
    rows = np.empty((n, d + 1), dtype=np.float32)
    rows[:, 0] = dt
    for j in range(d):
        rows[:, j + 1] = (np.sin(t / (7.0 + j)) + 1) / 2
    return rows
