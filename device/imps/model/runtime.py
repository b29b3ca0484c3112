"""Run a single-step MDRNN .tflite on the device, carrying its LSTM state.

Loads with tflite-runtime, falling back to ai-edge-litert. The step is kept
cheap: inputs, outputs and states are numpy views onto the interpreter's own
buffers, obtained once; a step writes the input row in place, invokes, and
copies the new state into the state inputs. Nothing is allocated per step
except the small list the sampler reads.

Loading: one invoke with zero inputs comes before the views are taken (models
with WHILE loops, as IMPSY converts its LSTM, have no output buffers until
then), and if the runtime moves its buffers between invokes every step takes
fresh views. Our own models name their tensors in a signature; for any other
model the state outputs are paired with the state inputs by a probe at load
(see ``_pair_states``), never by name order. Whatever the runtime raises while
loading becomes one ModelError naming the file.
"""
from __future__ import annotations

import ctypes
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, RuntimeMissingError
from .model_file import (MAX_MODEL_BYTES, NO_SIDECAR, PARAMS_NAME, X_NAME, Sidecar, check_flatbuffer_header,
                         model_sha256, read_sidecar, shape_from_params_size, state_names)
from ..readfile import read_regular
from .sampling import Sampler

log = logging.getLogger(__name__)

RUNTIMES = ("tflite-runtime", "ai-edge-litert")

#: Both runtimes' XNNPACK kernels learn the CPU from this file; without it (systemd's
#: ProcSubset=pid hides it) they print "Error in cpuinfo" and run without XNNPACK, about 2 to 6
#: times slower per step (docs/appliance.md).
CPUINFO = Path("/proc/cpuinfo")
_cpuinfo_warned = False


def warn_if_cpu_hidden() -> bool:
    """Say once, in words, when the runtime cannot see the CPU and so runs slowly. True if hidden."""
    global _cpuinfo_warned
    try:
        hidden = not CPUINFO.read_text(errors="replace").strip()
    except OSError:
        hidden = True
    if hidden and not _cpuinfo_warned:
        _cpuinfo_warned = True
        log.warning("cannot read %s (a ProcSubset=pid unit?): the model runs without XNNPACK, "
                    "2 to 6 times slower per step", CPUINFO)
    return hidden


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


_CHILD = """\
import sys
from imps.errors import ModelError
from imps.model.runtime import MDRNN
try:
    m = MDRNN(sys.argv[1], runtime=sys.argv[2], probe=False, content=sys.stdin.buffer.read())
    m.step([0.0] * m.dimension)
except ModelError as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
"""

#: (sha256, runtime) of the model bytes a child process loaded and stepped in this process's
#: lifetime: only those reach this process's interpreter without a new child check.
_verified: set[tuple[str, str]] = set()


def _probe_in_child(path: Path, runtime: str, data: bytes) -> None:
    """Load and step these very bytes in a throwaway process first: the runtimes do not fully verify
    flatbuffers, and a damaged or crafted file can crash (SIGSEGV) the process that loads it. A
    matching sha256 does not make this unnecessary: it proves identity, not safety (issue #27)."""
    digest = model_sha256(data)
    if (digest, runtime) in _verified:
        return
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path), runtime], input=data, capture_output=True)
    err = done.stderr.decode("utf-8", "replace").strip()
    if done.returncode < 0:
        raise ModelError(f"model {path}: corrupt TFLite file (loading it crashed {runtime} with signal "
                         f"{-done.returncode}); re-export or re-deploy it")
    if done.returncode == 3 and err:   # the child's ModelError: already a message for the user
        raise ModelError(err.splitlines()[-1][:300])
    if done.returncode != 0:
        raise ModelError(f"model {path}: {runtime} failed while loading it (exit code {done.returncode}); "
                         f"re-export it, or try the other runtime ([model] runtime)")
    _verified.add((digest, runtime))


def read_model_bytes(path: Path) -> bytes:
    """A model file's bytes (at most MAX_MODEL_BYTES, a regular file), or one clear ModelError."""
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.tflite"))
        raise ModelError(f"model {path}: is a directory, not a model file; give the .tflite file itself"
                         + (f" (it holds {', '.join(inside[:3])})" if inside else " (it holds no .tflite file)"))
    data = read_regular(path, MAX_MODEL_BYTES, "model", ModelError)
    if data is None:
        raise ModelError(f"model {path}: no such file")
    return data


def open_interpreter(path: str | os.PathLike, runtime: str = "auto", threads: int = 1, probe: bool = True,
                     sidecar: Sidecar | None = None, content: bytes | None = None):
    """A ready (allocated) interpreter for a model file, or one clear ModelError.

    The file is read once (``content``: these bytes instead) and the interpreter gets those
    bytes, never the path, so what was checked is what runs. Before a runtime in this process
    sees them: the flatbuffer header is checked, the sidecar's sha256 (when there is one) must
    match, and unless a child process already loaded and stepped the same bytes in this
    process's lifetime, one does now (``probe``), so a damaged file is an error, not a crash.
    With runtime "auto", a model whose operators are newer than tflite-runtime 2.14
    knows (IMPSY's `--optimise` models) is loaded with ai-edge-litert instead.
    """
    path = Path(path)
    data = read_model_bytes(path) if content is None else content
    check_flatbuffer_header(path, data)
    cls, name = interpreter_class(runtime)
    warn_if_cpu_hidden()
    if sidecar is not None and sidecar.sha256:
        if model_sha256(data) != sidecar.sha256:
            raise ModelError(f"model {path}: checksum does not match its sidecar (a truncated or damaged copy?); "
                             "re-export or re-deploy it")
    try:
        if probe:
            _probe_in_child(path, name, data)
        return _allocated(cls, path, data, threads, name), name
    except ModelError as exc:
        if runtime != "auto" or name == RUNTIMES[-1] or NEWER_OPS not in str(exc):
            raise
        try:
            cls, other = interpreter_class(RUNTIMES[-1])
        except RuntimeMissingError:
            raise exc from None
        log.info("model %s: %s cannot run it, loading it with %s", path.name, name, other)
        if probe:
            _probe_in_child(path, other, data)
        return _allocated(cls, path, data, threads, other), other


def _allocated(cls, path: Path, data: bytes, threads: int, runtime: str):
    try:
        interp = cls(model_content=data, num_threads=threads)
        interp.allocate_tensors()
        return interp
    except Exception as exc:  # the runtimes raise ValueError, RuntimeError and others: all mean "cannot load"
        raise _load_error(path, exc, runtime) from exc


#: The words of the error for a model that needs a newer runtime (the child probe passes it on as text).
NEWER_OPS = "uses operators newer than"


def _load_error(path: Path, exc: Exception, runtime: str = "the runtime") -> ModelError:
    """A runtime's exception while loading, as one clear ModelError naming the file."""
    if isinstance(exc, ModelError):
        return exc
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "Flex" in text or "Select TensorFlow" in text or "custom op" in text.lower():
        return ModelError(f"model {path}: needs TensorFlow Flex (Select TF) ops, which the device "
                          "runtime does not have; export it with builtin ops only (IMPSY 1.x's "
                          "`impsy convert-tflite` does)")
    if "Didn't find op for builtin opcode" in text:
        return ModelError(f"model {path}: {NEWER_OPS} {runtime} supports ({first.split('. ')[0]}); "
                          "set [model] runtime = \"ai-edge-litert\" (or \"auto\"), or convert it without "
                          "optimisation")
    return ModelError(f"model {path}: not a usable TFLite model ({first})")


@dataclass
class ModelShape:
    dimension: int
    units: int
    layers: int
    mixtures: int
    input_scale: float


@dataclass
class TensorMap:
    """Tensor indices: the input row, the state inputs in h0, c0, h1, c1 order, the params
    output, and the state output that carries each state input to the next step."""
    x: int
    states_in: list[int]
    params: int
    states_out: list[int]
    how: str                  # "signature names" or "probe"


def _tensor_map(interp, path: Path) -> TensorMap:
    sigs = interp._get_full_signature_list() if hasattr(interp, "_get_full_signature_list") else {}
    if sigs:
        sig = next(iter(sigs.values()))
        ins, outs = sig["inputs"], sig["outputs"]
        layers = sum(1 for n in ins if re.fullmatch(r"h\d+", n))
        names = state_names(layers)
        if layers and X_NAME in ins and PARAMS_NAME in outs and all(n in ins and f"{n}_out" in outs for n in names):
            return TensorMap(ins[X_NAME], [ins[n] for n in names], outs[PARAMS_NAME],
                             [outs[f"{n}_out"] for n in names], "signature names")
    # A model from another tool (IMPSY: no signature, outputs Identity_1..4): find x by rank and
    # the states by shape, then pair state inputs with state outputs by what they do.
    ins = interp.get_input_details()
    outs = interp.get_output_details()
    xs = [d for d in ins if len(d["shape"]) == 3]
    if len(xs) != 1 or tuple(xs[0]["shape"][:2]) != (1, 1):
        raise ModelError(f"model {path}: expected one input of shape (1, 1, D), found {[list(d['shape']) for d in ins]}")
    state_in = [d for d in ins if len(d["shape"]) == 2]
    if not state_in or len(state_in) % 2 or len(state_in) + 1 != len(ins):
        raise ModelError(f"model {path}: expected h and c state inputs per layer beside x, "
                         f"found inputs {[list(d['shape']) for d in ins]}")
    units = int(state_in[0]["shape"][1])
    if any(list(d["shape"]) != [1, units] for d in state_in):
        raise ModelError(f"model {path}: state inputs of different shapes {[list(d['shape']) for d in state_in]}")
    state_out = [d for d in outs if list(d["shape"]) == [1, units]]
    params = [d for d in outs if d not in state_out]
    if len(params) != 1 or len(state_out) != len(state_in) or len(params[0]["shape"]) != 2:
        raise ModelError(f"model {path}: expected one params output and {len(state_in)} state outputs of "
                         f"shape [1, {units}], found outputs {[list(d['shape']) for d in outs]}")
    states_in, states_out = _pair_states(interp, path, xs[0]["index"], [d["index"] for d in state_in],
                                         [d["index"] for d in state_out])
    return TensorMap(xs[0]["index"], states_in, params[0]["index"], states_out, "probe")


#: Probe sizes: a state input set to PROBE and then 3 * PROBE on every unit.
PROBE = 2.0
CHANGED = 1e-5          # an output moved by more than this responds to the input
LINEAR = 1e-4           # c_out follows c_in exactly linearly (c' = f*c + i*g); h_out never does
NONLINEAR = 1e-3


def _pair_states(interp, path: Path, x: int, ins: list[int], outs: list[int]) -> tuple[list[int], list[int]]:
    """Which state output carries which state input, found by perturbing each input in turn.

    In a stacked LSTM a state input of layer l moves the state outputs of layers l and above,
    so the sets of outputs each input moves order the layers. Within a layer, c_out responds
    to c_in exactly linearly (the forget gate does not depend on c), while h_out
    (o * tanh(c')) and everything h_in moves do not. Returns (h0, c0, h1, c1, ...) inputs and
    the outputs paired with them; a ModelError if the pairing cannot be established.
    """
    def run(setting: dict) -> dict:
        for i in [x] + ins:
            shape = next(d["shape"] for d in interp.get_input_details() if d["index"] == i)
            interp.set_tensor(i, np.full(shape, setting.get(i, 0.0), np.float32))
        interp.invoke()
        return {o: interp.get_tensor(o).reshape(-1).astype(np.float64) for o in outs}

    def refuse(why: str) -> ModelError:
        return ModelError(f"model {path}: cannot tell which state output carries which state input ({why}); "
                          "the box would play it with scrambled memory. Export it with named tensors "
                          "(x, h0, c0, ..., params, h0_out, c0_out, ...) or with a sidecar")

    try:
        base = run({})
        moved, delta1, delta3 = {}, {}, {}
        for i in ins:
            one, three = run({i: PROBE}), run({i: 3 * PROBE})
            delta1[i] = {o: one[o] - base[o] for o in outs}
            delta3[i] = {o: three[o] - base[o] for o in outs}
            moved[i] = frozenset(o for o in outs if np.abs(delta1[i][o]).max() > CHANGED)
        run({})
    except Exception as exc:
        raise _load_error(path, exc) from exc
    layers = len(ins) // 2
    by_reach = sorted(ins, key=lambda i: -len(moved[i]))
    layer_ins, layer_outs = [], []
    for l in range(layers):
        pair = by_reach[2 * l:2 * l + 2]
        reach = moved[pair[0]]
        below = moved[by_reach[2 * l + 2]] if l + 1 < layers else frozenset()
        if moved[pair[1]] != reach or len(reach) != 2 * (layers - l) or not below < reach:
            raise refuse(f"the state inputs do not form {layers} stacked LSTM layers")
        layer_ins.append(pair)
        layer_outs.append(sorted(reach - below))
    order_in, order_out = [], []
    for pair, (p, q) in zip(layer_ins, layer_outs):
        residual = {}
        for i in pair:
            for o in (p, q):
                d1, d3 = delta1[i][o], delta3[i][o]
                residual[i, o] = float(np.abs(d3 - 3 * d1).max() / max(np.abs(d3).max(), 1e-30))
        linear = [key for key, r in residual.items() if r < LINEAR]
        if len(linear) != 1 or any(r < NONLINEAR for key, r in residual.items() if key != linear[0]):
            raise refuse("no single state input/output pair behaves like an LSTM's cell state")
        c_in, c_out = linear[0]
        h_in = pair[1] if pair[0] == c_in else pair[0]
        h_out = q if p == c_out else p
        order_in += [h_in, c_in]
        order_out += [h_out, c_out]
    return order_in, order_out


class MDRNN:
    """A loaded single-step MDRNN: feed rows, sample the next one.

    ``step(row)`` feeds one gesture row (dt, controls) in real units and keeps
    the mixture it predicts for the next row; ``sample()`` draws from it;
    ``predict(row)`` does both. The LSTM state follows every step until ``reset()``.
    """

    def __init__(self, path: str | os.PathLike, dimension: int | None = None, runtime: str = "auto",
                 threads: int = 1, seed: int | None = None, pi_temperature: float | None = None,
                 sigma_temperature: float | None = None, probe: bool = True, content: bytes | None = None):
        self.path = Path(path)
        self.sidecar: Sidecar | None = read_sidecar(self.path)
        self.interpreter, self.runtime = open_interpreter(self.path, runtime, threads, probe, self.sidecar, content)
        try:
            self._map = _tensor_map(self.interpreter, self.path)
            self._zero_inputs_and_invoke()
            self._take_views()
            self._invoke = self.interpreter._interpreter.Invoke   # skip the per-call safety check: we hold views on purpose
            self._check_buffers_stay()
        except ModelError:
            raise
        except Exception as exc:  # anything the runtime raises while we set up is a model problem
            raise _load_error(self.path, exc, self.runtime) from exc
        self.shape = self._read_shape(dimension)
        self.state_pairing = self._map.how
        sc = self.sidecar
        #: Where the sampling settings came from, for the log and check-model.
        self.settings_source = "its sidecar" if sc else NO_SIDECAR.describe()
        if sc is None:
            log.info("model %s has no sidecar: sizes from its tensors (state paired by %s), %s",
                     self.path.name, self.state_pairing, NO_SIDECAR.describe())
        self.sampler = Sampler(self.shape.dimension, self.shape.mixtures, self.shape.input_scale,
                               pi_temperature if pi_temperature is not None else
                               (sc.pi_temperature if sc else NO_SIDECAR.pi_temperature),
                               sigma_temperature if sigma_temperature is not None else
                               (sc.sigma_temperature if sc else NO_SIDECAR.sigma_temperature),
                               seed)
        self._scale = float(self.shape.input_scale)
        self.reset()

    def _zero_inputs_and_invoke(self) -> None:
        """Zero inputs, one invoke: some models (IMPSY's WHILE loops) have no output buffers until then."""
        interp = self.interpreter
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], np.zeros(d["shape"], np.float32))
        interp.invoke()

    def _take_views(self) -> None:
        """numpy and ctypes views onto the interpreter's own input, state and output buffers."""
        tensor, m = self.interpreter.tensor, self._map
        self._x = tensor(m.x)()[0, 0]                        # (D,) view
        self._x_c = (ctypes.c_float * self._x.shape[0]).from_address(self._x.ctypes.data)
        self._states_in = [tensor(i)() for i in m.states_in]  # (1, units) views
        self._states_out = [tensor(i)() for i in m.states_out]
        self._params = tensor(m.params)()[0]                  # (P,) view
        # The sampler slices this ctypes view of the same buffer: slices come out as lists, no numpy calls.
        self._params_c = (ctypes.c_float * self._params.shape[0]).from_address(self._params.ctypes.data)
        # (destination, source) 1-D views; slice assignment is the cheapest copy numpy offers.
        self._carry = [(d.reshape(-1), s.reshape(-1)) for d, s in zip(self._states_in, self._states_out)]

    def _addresses(self) -> list[int]:
        return [v.ctypes.data for v in [self._x, self._params] + self._states_in + self._states_out]

    def _check_buffers_stay(self, invokes: int = 3) -> None:
        """Views are only safe if the runtime keeps its buffers where they are between invokes.
        Where it moves them (dynamic tensors), every step takes fresh views instead."""
        before = self._addresses()
        for _ in range(invokes):
            self._invoke()
        self._take_views()
        self.buffers_move = self._addresses() != before
        if self.buffers_move:
            self.step = self._step_fresh_views

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
        return ModelShape(d, units, layers, mixtures, sc.input_scale if sc else NO_SIDECAR.input_scale)

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
        if self.buffers_move:
            self._take_views()
        for s in self._states_in:
            s.fill(0.0)
        self._x.fill(0.0)
        self.invoke_only()
        if self.buffers_move:
            self._take_views()

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

    def _step_fresh_views(self, row) -> np.ndarray:
        """step() for a runtime that moves its buffers between invokes (slower, same numbers)."""
        self._take_views()
        scale = self._scale
        self._x_c[:] = [v * scale for v in row]
        self._invoke()
        self._take_views()
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
