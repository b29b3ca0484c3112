"""Helpers the tests import by name (conftest.py holds only fixtures).

They live here, not in conftest.py, because tests/vm has a conftest.py of its own: once both are
collected, the module name `conftest` means whichever was imported last.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from imps.freeport import free_port  # noqa: F401  (the tests import it from here)

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


class Emitted:
    """A recording ``emit`` (io/inputs.py): ``items`` is every (values, channels) an input sent."""

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def __call__(self, values, channels=None):
        with self.lock:
            self.items.append((list(values), list(channels)))

    def __len__(self):
        return len(self.items)


def stop_process(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """Terminate a helper process (an sshd, Pure Data), and kill it if it does not go."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


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


class ImpsRun:
    """``python -m imps run ARGS`` as a child a test can wait on, on ports nobody else holds.

    The OSC ports are always given on the command line (0: the system picks a free one), so a
    box a developer has playing on the default ports never takes a test's, whatever the config
    file says (an IMPSY config names no control port). stderr is read on a thread, so a chatty
    child never blocks on a full pipe, and every wait fails at once, with that stderr, when the
    child exits. Use it as a context manager: leaving stops the child (SIGTERM, then kill).
    """

    def __init__(self, python: str, *args, sd=None, interface_port: int = 0, control_port: int = 0,
                 env: dict | None = None, cwd=None, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL):
        self.sd = sd
        env = dict(os.environ if env is None else env)
        if sd is not None:
            env = sd.env(env)
        self.proc = subprocess.Popen(
            [python, "-m", "imps", "run", *map(str, args),
             "--interface-port", str(interface_port), "--control-port", str(control_port)],
            env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True)
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, name="imps-run-stderr", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._lines.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._lines)

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def _exited(self) -> AssertionError:
        self._reader.join(5)          # the rest of what it said
        return AssertionError(f"`imps run` exited with {self.proc.returncode}; its stderr:\n{self.stderr[-4000:]}")

    def wait_for(self, key: str, timeout: float = 60.0, count: int = 1, value: str | None = None):
        """The notify socket's ``wait_for``, failing at once when the child exits first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.sd.wait_for(key, timeout=min(0.2, max(deadline - time.monotonic(), 0.01)),
                                        count=count, value=value)
            except TimeoutError:
                if self.proc.poll() is not None:
                    raise self._exited() from None
                if time.monotonic() >= deadline:
                    raise

    def wait_until(self, condition, timeout: float = 15.0, what: str = "condition") -> None:
        """support.wait_until, failing at once when the child exits first."""
        if not wait_for(lambda: condition() or self.proc.poll() is not None, timeout) or not condition():
            if self.proc.poll() is not None:
                raise self._exited()
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; stderr:\n{self.stderr[-2000:]}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the child (SIGTERM: the box's clean stop), wait for it; its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            self._reader.join(5)
            raise AssertionError(f"`imps run` did not stop within {timeout} s of {sig!r}; stderr:\n"
                                 f"{self.stderr[-3000:]}") from None
        self._reader.join(5)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)


def toml_value(v) -> str:
    """A value as TOML text: the fuzz tests' one writer (nan, inf, strings json-escaped, lists)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)   # a TOML basic string for what json escapes (control characters included)
    return "[" + ", ".join(toml_value(x) for x in v) + "]"
