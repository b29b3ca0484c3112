"""Run a single-step MDRNN .tflite on the device, carrying its LSTM state.

Loads with tflite-runtime, falling back to ai-edge-litert. The step is kept
cheap: inputs, outputs and states are numpy views onto the interpreter's own
buffers, obtained once; a step writes the input row in place, invokes, and
copies the new state into the state inputs. Nothing is allocated per step
except the small list the sampler reads.
"""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ModelError, RuntimeMissingError
from .model_file import (DEFAULT_INPUT_SCALE, PARAMS_NAME, X_NAME, Sidecar, check_flatbuffer_header,
                         model_sha256, read_sidecar, shape_from_params_size, state_names)
from .sampling import Sampler

RUNTIMES = ("tflite-runtime", "ai-edge-litert")


def interpreter_class(runtime: str = "auto"):
    """The Interpreter class of the chosen runtime ('auto' tries them in order).

    'auto' skips tflite-runtime in a process that has imported TensorFlow (the
    two clash: models fail to load or crash), which only happens on a workstation.
    """
    if runtime == "auto":
        wanted = tuple(r for r in RUNTIMES if not (r == "tflite-runtime" and "tensorflow" in sys.modules))
    else:
        wanted = (runtime,)
    for name in wanted:
        if name not in RUNTIMES:
            raise ModelError(f"unknown runtime {name!r}, expected auto or one of {', '.join(RUNTIMES)}")
        try:
            if name == "tflite-runtime":
                from tflite_runtime.interpreter import Interpreter
            else:
                from ai_edge_litert.interpreter import Interpreter
            return Interpreter, name
        except ImportError:
            continue
    raise RuntimeMissingError(
        f"no TFLite runtime: install tflite-runtime (Python <= 3.11) or ai-edge-litert (tried {', '.join(wanted)})")


def available_runtimes() -> list[str]:
    found = []
    for name in RUNTIMES:
        try:
            interpreter_class(name)
            found.append(name)
        except RuntimeMissingError:
            pass
    return found


def _probe_in_child(path: Path, runtime: str) -> None:
    """Load the model in a throwaway process: tflite-runtime 2.14 does not verify flatbuffers
    and a damaged file can crash the process that loads it."""
    code = ("import sys\nfrom imps.runtime import MDRNN\n"
            f"m = MDRNN(sys.argv[1], runtime={runtime!r}, probe=False)\nm.step([0.0] * m.dimension)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    if done.returncode < 0:
        raise ModelError(f"model {path}: corrupt TFLite file (loading it crashed {runtime} with signal "
                         f"{-done.returncode}); re-export or re-deploy it")
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if "ModelError" in line] or \
            done.stderr.strip().splitlines()[-1:]
        raise ModelError(lines[-1].split("ModelError: ", 1)[-1] if lines else f"model {path}: cannot be loaded")


def open_interpreter(path: str | os.PathLike, runtime: str = "auto", threads: int = 1, probe: bool = True,
                     sidecar: Sidecar | None = None):
    """A ready (allocated) interpreter for a model file, or one clear ModelError.

    Before a runtime sees the file: the flatbuffer header is checked, the sidecar's
    sha256 (when there is one) must match, and without one a tflite-runtime load is
    tried first in a child process, so a damaged file is an error, not a crash.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model {path}: no such file")
    data = path.read_bytes()
    check_flatbuffer_header(path, data)
    cls, name = interpreter_class(runtime)
    if sidecar is not None and sidecar.sha256:
        if model_sha256(data) != sidecar.sha256:
            raise ModelError(f"model {path}: checksum does not match its sidecar (a truncated or damaged copy?); "
                             "re-export or re-deploy it")
    elif probe and name == "tflite-runtime":
        _probe_in_child(path, name)
    try:
        interp = cls(model_path=str(path), num_threads=threads)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        text = str(exc)
        if "Flex" in text or "Select TensorFlow" in text or "custom op" in text.lower():
            raise ModelError(f"model {path}: needs TensorFlow Flex (Select TF) ops, which the device "
                             "runtime does not have; export it with builtin ops only") from exc
        raise ModelError(f"model {path}: not a loadable TFLite model ({text.splitlines()[0] if text else exc})") from exc
    return interp, name


@dataclass
class ModelShape:
    dimension: int
    units: int
    layers: int
    mixtures: int
    input_scale: float


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _tensor_map(interp, path: Path):
    """(x index, [state input indices], params index, [state output indices]) in h0, c0, h1, c1 order."""
    sigs = interp._get_full_signature_list() if hasattr(interp, "_get_full_signature_list") else {}
    if sigs:
        sig = next(iter(sigs.values()))
        ins, outs = sig["inputs"], sig["outputs"]
        layers = sum(1 for n in ins if re.fullmatch(r"h\d+", n))
        names = state_names(layers)
        if X_NAME in ins and PARAMS_NAME in outs and all(n in ins and f"{n}_out" in outs for n in names):
            return (ins[X_NAME], [ins[n] for n in names], outs[PARAMS_NAME], [outs[f"{n}_out"] for n in names])
    # A model from another tool: find x by rank, states by shape, in natural name order.
    ins = interp.get_input_details()
    outs = interp.get_output_details()
    xs = [d for d in ins if len(d["shape"]) == 3]
    if len(xs) != 1:
        raise ModelError(f"model {path}: expected one input of shape (1, 1, D), found {[list(d['shape']) for d in ins]}")
    state_in = sorted((d for d in ins if len(d["shape"]) == 2), key=lambda d: _natural_key(d["name"]))
    if not state_in or len(state_in) % 2:
        raise ModelError(f"model {path}: expected h and c state inputs per layer, found {len(state_in)} state inputs")
    units = int(state_in[0]["shape"][1])
    state_out = sorted((d for d in outs if len(d["shape"]) == 2 and d["shape"][1] == units),
                       key=lambda d: _natural_key(d["name"]))
    params = [d for d in outs if d not in state_out]
    if len(params) != 1 or len(state_out) != len(state_in):
        raise ModelError(f"model {path}: expected one params output and {len(state_in)} state outputs, "
                         f"found outputs {[list(d['shape']) for d in outs]}")
    return xs[0]["index"], [d["index"] for d in state_in], params[0]["index"], [d["index"] for d in state_out]


class MDRNN:
    """A loaded single-step MDRNN: feed rows, sample the next one.

    ``step(row)`` feeds one gesture row (dt, controls) in real units and keeps
    the mixture it predicts for the next row; ``sample()`` draws from it;
    ``predict(row)`` does both. The LSTM state follows every step until ``reset()``.
    """

    def __init__(self, path: str | os.PathLike, dimension: int | None = None, runtime: str = "auto",
                 threads: int = 1, seed: int | None = None, pi_temperature: float | None = None,
                 sigma_temperature: float | None = None, probe: bool = True):
        self.path = Path(path)
        self.sidecar: Sidecar | None = read_sidecar(self.path)
        self.interpreter, self.runtime = open_interpreter(self.path, runtime, threads, probe, self.sidecar)
        x_i, s_in, p_i, s_out = _tensor_map(self.interpreter, self.path)
        tensor = self.interpreter.tensor
        self._x = tensor(x_i)()[0, 0]                       # (D,) view
        self._x_c = (ctypes.c_float * self._x.shape[0]).from_address(self._x.ctypes.data)
        self._states_in = [tensor(i)() for i in s_in]        # (1, units) views
        self._states_out = [tensor(i)() for i in s_out]
        self._params = tensor(p_i)()[0]                       # (P,) view
        # The sampler slices this ctypes view of the same buffer: slices come out as lists, no numpy calls.
        self._params_c = (ctypes.c_float * self._params.shape[0]).from_address(self._params.ctypes.data)
        self._invoke = self.interpreter._interpreter.Invoke   # skip the per-call safety check: we hold views on purpose
        # (destination, source) 1-D views; slice assignment is the cheapest copy numpy offers.
        self._carry = [(d.reshape(-1), s.reshape(-1)) for d, s in zip(self._states_in, self._states_out)]
        self.shape = self._read_shape(dimension)
        sc = self.sidecar
        self.sampler = Sampler(self.shape.dimension, self.shape.mixtures, self.shape.input_scale,
                               pi_temperature if pi_temperature is not None else (sc.pi_temperature if sc else 1.0),
                               sigma_temperature if sigma_temperature is not None else (sc.sigma_temperature if sc else 0.01),
                               seed)
        self._scale = float(self.shape.input_scale)
        self.reset()

    def _read_shape(self, dimension: int | None) -> ModelShape:
        d = int(self._x.shape[0])
        units = int(self._states_in[0].shape[1])
        layers = len(self._states_in) // 2
        mixtures = shape_from_params_size(int(self._params.shape[0]), d)
        sc = self.sidecar
        if sc is not None:
            found = (d, units, layers, mixtures)
            declared = (sc.dimension, sc.units, sc.layers, sc.mixtures)
            if found != declared:
                raise ModelError(f"model {self.path}: sidecar says (D, units, layers, K) = {declared} "
                                 f"but the tensors are {found}")
        if dimension is not None and dimension != d:
            raise ModelError(f"model {self.path}: dimension {d} ({d - 1} controls) does not match the "
                             f"configured {dimension} ({dimension - 1} controls)")
        return ModelShape(d, units, layers, mixtures, sc.input_scale if sc else DEFAULT_INPUT_SCALE)

    # -- temperatures are the sampler's; exposed here for the engine's live controls
    @property
    def pi_temperature(self) -> float:
        return self.sampler.pi_temperature

    @pi_temperature.setter
    def pi_temperature(self, value: float) -> None:
        self.sampler.pi_temperature = value

    @property
    def sigma_temperature(self) -> float:
        return self.sampler.sigma_temperature

    @sigma_temperature.setter
    def sigma_temperature(self, value: float) -> None:
        self.sampler.sigma_temperature = value

    @property
    def dimension(self) -> int:
        return self.shape.dimension

    def reset(self) -> None:
        """Forget everything heard: zero state, and a neutral last prediction."""
        for s in self._states_in:
            s.fill(0.0)
        self._x.fill(0.0)
        self.invoke_only()

    def invoke_only(self) -> None:
        """The bare interpreter invoke (benchmarks compare against this)."""
        self._invoke()

    def step(self, row) -> np.ndarray:
        """Feed one row (dt, controls); returns a view of the predicted mixture params."""
        scale = self._scale
        self._x_c[:] = [v * scale for v in row]
        self._invoke()
        for dst, src in self._carry:
            dst[:] = src
        return self._params

    def sample(self) -> list[float]:
        """Draw the next row from the last prediction."""
        return self.sampler.sample(self._params_c)

    def predict(self, row) -> list[float]:
        self.step(row)
        return self.sampler.sample(self._params_c)

    def state(self) -> list[np.ndarray]:
        """A copy of the LSTM state (for tests and inspection)."""
        return [s.copy() for s in self._states_in]
