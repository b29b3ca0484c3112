"""Convert an IMPSY model into the box's own single-step format: `imps-train convert-impsy`.

IMPSY's converter keeps each LSTM layer as a WHILE loop, which the runtimes
step three to four times slower than the box's unrolled LSTM (docs/impsy.md).
The network is the same (Keras LSTM layers, keras-mdn-layer's MDN, IMPSY's
input scale 10), so the weights carry over one to one:

- from IMPSY's ``.tflite`` (IMPSY 1.x's ``impsy convert-tflite``): read out of
  the flatbuffer by following the graph, not by tensor names or order (see
  ``read_tflite``);
- from IMPSY's ``.keras`` (an inference model or a training checkpoint):
  loaded with Keras, layers found by IMPSY's names (``lstm_<i>``, ``mdn_outputs``).

The weights go into ``mdrnn.build_inference_model`` (unrolled, named tensors)
and are exported with a sidecar holding IMPSY's sampling defaults and where
the model came from (``converted_from``). Before anything is written, the new
model must give IMPSY's model's mixture parameters within 1e-4 at each of 200
steps, in every TFLite runtime installed: the IMPSY ``.tflite`` itself run in
the same runtime is the reference, or for a ``.keras`` the Keras model.
Anything it cannot convert is refused with one ModelError line.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imps.errors import ModelError
from imps.model.model_file import NO_SIDECAR, Sidecar, model_sha256
from imps.model.runtime import RUNTIMES

from .export import TOLERANCE, random_rows, write_verified

#: Steps of carried state the converted model must match IMPSY's over (the interop tests' count).
VERIFY_STEPS = 200


@dataclass
class ImpsyWeights:
    """An IMPSY MDRNN's weights in Keras layout: per layer (kernel (in, 4U), recurrent (U, 4U),
    bias (4U,)), gates in Keras order i, f, c, o; the MDN's three Dense layers as (W (U, out), b)."""
    dimension: int
    units: int
    mixtures: int
    lstm: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    mus: tuple[np.ndarray, np.ndarray]
    sigmas: tuple[np.ndarray, np.ndarray]
    pi: tuple[np.ndarray, np.ndarray]

    @property
    def layers(self) -> int:
        return len(self.lstm)


def refusal(path, why: str) -> ModelError:
    return ModelError(f"model {path}: cannot convert it: {why}")


# -- IMPSY's .tflite ----------------------------------------------------------------------

#: TensorType codes (tensorflow/lite/schema): float32 weights, and the types quantised weights come in.
FLOAT32 = 0
QUANTISED = {1, 3, 7, 9}     # float16, uint8, int16, int8


class _Graph:
    """One subgraph of a flatbuffer model: ops by the tensors they make and read, constants."""

    def __init__(self, model, index: int, names: dict):
        self.model, self.sub, self.names = model, model.subgraphs[index], names
        self.producer = {t: op for op in self.sub.operators for t in op.outputs}
        self.consumers: dict[int, list] = {}
        for op in self.sub.operators:
            for t in op.inputs:
                self.consumers.setdefault(int(t), []).append(op)

    def kind(self, op) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        if code.customCode:
            return "CUSTOM:" + (code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode)
        return self.names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")

    def ops(self, kind: str) -> list:
        return [op for op in self.sub.operators if self.kind(op) == kind]

    def constant(self, path, tensor: int) -> np.ndarray | None:
        """The float32 values of a constant tensor, None if it is computed; quantised weights are refused."""
        if tensor < 0:
            return None
        t = self.sub.tensors[tensor]
        if tensor in self.producer:
            if self.kind(self.producer[tensor]) == "DEQUANTIZE":
                raise refusal(path, "its weights are quantised (`impsy convert-tflite --optimise`); convert the "
                                    "model IMPSY wrote without --optimise, or its .keras")
            return None
        data = self.model.buffers[t.buffer].data
        if data is None or len(data) == 0:
            return None
        if t.type in QUANTISED:
            raise refusal(path, "its weights are quantised (`impsy convert-tflite --optimise`); convert the "
                                "model IMPSY wrote without --optimise, or its .keras")
        if t.type != FLOAT32:
            return None     # an index or a shape, not a weight
        return np.frombuffer(bytes(data), dtype=np.float32).reshape(list(t.shape)).copy()


def _operator_names() -> dict:
    from tensorflow.lite.python import schema_py_generated as schema
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def read_tflite(path: Path) -> ImpsyWeights:
    """The weights of an IMPSY 1.x .tflite, found by what each tensor does in the graph.

    The main graph is the LSTM layers (one WHILE loop each, in data-flow order), then three
    FULLY_CONNECTED ops concatenated as ``[mus | sigmas | pi]`` (sigmas through ELU).
    In each loop body, the FULLY_CONNECTED that reads a loop variable directly multiplies
    the hidden state (the recurrent kernel); the other reads the sequence (the kernel); the
    bias is the constant added to their sum. TFLite keeps a FULLY_CONNECTED's weights as
    (out, in), Keras as (in, out).
    """
    from tensorflow.lite.tools import flatbuffer_utils
    try:
        model = flatbuffer_utils.read_model(str(path))
    except Exception as exc:   # flatbuffers raises whatever the damaged bytes lead to
        raise refusal(path, f"not a readable TFLite file ({type(exc).__name__})") from None
    names = _operator_names()
    main = _Graph(model, 0, names)
    custom = sorted({g.kind(op) for g in [_Graph(model, i, names) for i in range(len(model.subgraphs))]
                     for op in g.sub.operators if g.kind(op).startswith("CUSTOM:")})
    if custom:
        raise refusal(path, f"it needs TensorFlow Flex ops ({', '.join(custom)[:80]}), as IMPSY 0.5 converted; "
                            "reconvert it with IMPSY 1.x, or convert its .keras")
    loops = main.ops("WHILE")
    if not loops:
        raise refusal(path, "no LSTM loops (WHILE operators) in it: not a model IMPSY 1.x's "
                            "`impsy convert-tflite` wrote (a model of the box's own needs no conversion)")
    lstm = [_read_loop(path, model, names, op) for op in loops]
    units = lstm[0][1].shape[0]
    dimension = lstm[0][0].shape[0]
    for i, (kernel, recurrent, bias) in enumerate(lstm):
        wanted_in = dimension if i == 0 else units
        if kernel.shape != (wanted_in, 4 * units) or recurrent.shape != (units, 4 * units) or bias.shape != (4 * units,):
            raise refusal(path, f"LSTM layer {i} has weights of shapes {kernel.shape}, {recurrent.shape}, "
                                f"{bias.shape}: not {len(lstm)} stacked LSTM layers of {units} units")
    mus, sigmas, pi = _read_mdn(path, main, units)
    mixtures = pi[1].shape[0]
    if mus[1].shape != (mixtures * dimension,) or sigmas[1].shape != (mixtures * dimension,):
        raise refusal(path, f"its mixture output has {mus[1].shape[0]} means for {mixtures} mixtures of "
                            f"dimension {dimension}")
    return ImpsyWeights(dimension, units, mixtures, lstm, mus, sigmas, pi)


def _read_loop(path, model, names, loop) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    body = _Graph(model, loop.builtinOptions.bodySubgraphIndex, names)
    variables = set(int(t) for t in body.sub.inputs)
    recurrent = kernel = None
    for op in body.ops("FULLY_CONNECTED"):
        weights = body.constant(path, int(op.inputs[1]))
        if weights is None:
            continue
        if int(op.inputs[0]) in variables:
            recurrent = weights.T
        else:
            kernel = weights.T
    biases = [c for op in body.ops("ADD") for c in (body.constant(path, int(t)) for t in op.inputs)
              if c is not None and c.ndim == 1 and c.size > 1]
    if kernel is None or recurrent is None or len(biases) != 1:
        raise refusal(path, "a WHILE loop in it is not a Keras LSTM layer as IMPSY 1.x converts one "
                            "(expected an input and a recurrent matrix product and one bias)")
    return kernel, recurrent, biases[0]


def _read_mdn(path, main: _Graph, units: int):
    outputs = [int(t) for t in main.sub.outputs]
    concat = [main.producer[t] for t in outputs if t in main.producer and main.kind(main.producer[t]) == "CONCATENATION"]
    if len(concat) != 1 or len(concat[0].inputs) != 3:
        raise refusal(path, "its output is not an MDN's [mus | sigmas | pi] (one CONCATENATION of three parts)")
    parts = []
    for t in concat[0].inputs:
        seen = []
        op = main.producer.get(int(t))
        while op is not None and main.kind(op) != "FULLY_CONNECTED":
            seen.append(main.kind(op))
            op = main.producer.get(int(op.inputs[0]))
        if op is None:
            raise refusal(path, "a part of its MDN output does not come from a Dense layer")
        weights, bias = main.constant(path, int(op.inputs[1])), main.constant(path, int(op.inputs[2]))
        if weights is None or bias is None or weights.shape[1] != units:
            raise refusal(path, "a Dense layer of its MDN has no constant weights and bias of the LSTM's size")
        parts.append(((weights.T, bias), "ELU" in seen))
    if [elu for _, elu in parts] != [False, True, False]:
        raise refusal(path, "its MDN output is not [mus | sigmas (ELU) | pi] as keras-mdn-layer makes it")
    return tuple(w for w, _ in parts)


# -- IMPSY's .keras -----------------------------------------------------------------------

def read_keras(path: Path) -> ImpsyWeights:
    """The weights of an IMPSY .keras: an inference model or a training checkpoint (layers
    ``lstm_0``.. and the MDN ``mdn_outputs``, in a training model inside ``td_mdn``)."""
    import keras
    import keras_mdn_layer as mdn
    try:
        model = keras.models.load_model(str(path), custom_objects={"MDN": mdn.MDN}, compile=False)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise refusal(path, f"Keras cannot load it ({first})") from None
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    heads = [layer for layer in model.layers if isinstance(layer, mdn.MDN)]
    heads += [layer.layer for layer in model.layers
              if isinstance(layer, keras.layers.TimeDistributed) and isinstance(layer.layer, mdn.MDN)]
    others = [layer for layer in model.layers if not isinstance(layer, (keras.layers.LSTM, keras.layers.InputLayer,
                                                                        keras.layers.TimeDistributed, mdn.MDN))]
    if not lstms or len(heads) != 1 or others:
        raise refusal(path, "not an IMPSY MDRNN (LSTM layers and one MDN layer, nothing else)")
    head = heads[0]
    lstm = [tuple(np.asarray(w, np.float32) for w in layer.get_weights()) for layer in lstms]
    dense = [tuple(np.asarray(w, np.float32) for w in d.get_weights())
             for d in (head.mdn_mus, head.mdn_sigmas, head.mdn_pi)]
    units, dimension = lstms[0].units, head.output_dim
    if any(layer.units != units for layer in lstms) or lstm[0][0].shape[0] != dimension:
        raise refusal(path, "its LSTM layers are not all of one size with the MDN's dimension as input")
    return ImpsyWeights(dimension, units, head.num_mix, lstm, *dense)


# -- the box's model ----------------------------------------------------------------------

def step_model(w: ImpsyWeights):
    """The box's unrolled single-step model with IMPSY's weights in it."""
    from . import mdrnn
    step = mdrnn.build_inference_model(w.dimension, w.units, w.layers, w.mixtures)
    for i, weights in enumerate(w.lstm):
        step.get_layer(f"lstm{i}").set_weights(list(weights))
    head = step.get_layer("mdn")
    for dense, weights in ((head.mdn_mus, w.mus), (head.mdn_sigmas, w.sigmas), (head.mdn_pi, w.pi)):
        dense.set_weights(list(weights))
    return step


_TRACE = """\
import sys, numpy as np
from imps.model.runtime import MDRNN
m = MDRNN(sys.argv[1], runtime=sys.argv[2])
rows = np.load(sys.argv[3])["rows"]
np.savez(sys.argv[3], rows=rows, params=np.array([m.step(r).copy() for r in rows]))
"""


def tflite_reference(model: Path, rows: np.ndarray, runtime: str) -> dict:
    """IMPSY's .tflite itself, run by the box's runtime as the box plays it unconverted
    (docs/impsy.md: the same params as IMPSY's TfliteMDRNN): params at each of the rows."""
    with tempfile.TemporaryDirectory(prefix="impsy-reference-") as tmp:
        out = Path(tmp) / "trace.npz"
        np.savez(out, rows=rows)
        done = subprocess.run([sys.executable, "-c", _TRACE, str(model), runtime, str(out)],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            raise refusal(model, f"{runtime} cannot run it as it is ({last})")
        with np.load(out) as z:
            return {"rows": z["rows"], "params": z["params"]}


def keras_reference(model: Path, rows: np.ndarray, w: ImpsyWeights) -> dict:
    """IMPSY's own Keras network (rebuilt by IMPSY's layer names from the .keras), stepped as
    IMPSY's PredictiveMusicMDRNN.generate steps it: scaled row in, params and state out."""
    import keras
    import keras_mdn_layer as mdn
    net = keras.models.load_model(str(model), custom_objects={"MDN": mdn.MDN}, compile=False)
    if len(net.inputs) == 1:   # a training checkpoint: IMPSY's own inference model beside it
        net = _impsy_inference_twin(net, w)
    state = [np.zeros((1, w.units), np.float32) for _ in range(2 * w.layers)]
    params = []
    for row in rows:
        out = net([(row * NO_SIDECAR.input_scale).reshape(1, 1, -1).astype(np.float32)] + state, training=False)
        params.append(np.asarray(out[0])[0])
        state = [np.asarray(s) for s in out[1:]]
    return {"rows": rows.astype(np.float32), "params": np.array(params, np.float32)}


def _impsy_inference_twin(training, w: ImpsyWeights):
    """IMPSY's inference model layout (build_mdrnn_model(inference=True)) with a checkpoint's weights."""
    import keras
    import keras_mdn_layer as mdn
    x = keras.Input(batch_shape=(1, 1, w.dimension), name="inputs")
    states = [keras.Input(batch_shape=(1, w.units), name=f"state_{k}_{i}") for i in range(w.layers) for k in "hc"]
    out, new = x, []
    for i in range(w.layers):
        out, h, c = keras.layers.LSTM(w.units, return_sequences=i < w.layers - 1, return_state=True,
                                      name=f"lstm_{i}")(out, initial_state=states[2 * i:2 * i + 2])
        new += [h, c]
    head = mdn.MDN(w.dimension, w.mixtures, name="mdn_outputs")
    net = keras.Model([x] + states, [head(out)] + new)
    net.set_weights(training.get_weights())
    return net


_RUNTIMES = "from imps.model.runtime import available_runtimes; print(','.join(available_runtimes()))"


def installed_runtimes() -> list[str]:
    """The TFLite runtimes a device-runtime process finds (asked in a child: tflite-runtime and
    TensorFlow must not share this process)."""
    done = subprocess.run([sys.executable, "-c", _RUNTIMES], capture_output=True, text=True, timeout=120)
    return [r for r in done.stdout.strip().split(",") if r in RUNTIMES]


def convert_impsy(model, out_path, runtimes: list[str] | None = None, seed: int = 0) -> dict:
    """Write out_path (.tflite) and its sidecar from an IMPSY .tflite or .keras, verified
    against IMPSY's model in each runtime; ModelError (one line) if it cannot be."""
    from .export import convert
    model, out_path = Path(model), Path(out_path)
    if not model.is_file():
        raise ModelError(f"model {model}: no such file")
    if model.resolve() == out_path.resolve():
        raise ModelError(f"model {model}: the converted model must go to another file (-o)")
    suffix = model.suffix.lower()
    if suffix == ".tflite":
        weights = read_tflite(model)
    elif suffix == ".keras":
        weights = read_keras(model)
    elif suffix == ".h5":
        raise refusal(model, "a .h5 holds weights without the model's sizes; make the .keras first with "
                             "IMPSY (`impsy convert-tflite -m model.h5 -d D -s SIZE` writes it beside)")
    else:
        raise refusal(model, f"expected IMPSY's .tflite or .keras, not {suffix or 'a file without a suffix'}")
    runtimes = runtimes or installed_runtimes()
    if not runtimes:
        raise ModelError("no TFLite runtime found to verify the conversion with (tflite-runtime, ai-edge-litert)")
    rows = random_rows(weights.dimension, VERIFY_STEPS, seed)
    if suffix == ".tflite":
        checks = [(r, tflite_reference(model, rows, r)) for r in runtimes]
    else:
        reference = keras_reference(model, rows, weights)
        checks = [(r, reference) for r in runtimes]
    blob = convert(step_model(weights))
    sidecar = Sidecar(sha256=model_sha256(blob), dimension=weights.dimension, units=weights.units,
                      layers=weights.layers, mixtures=weights.mixtures, input_scale=NO_SIDECAR.input_scale,
                      pi_temperature=NO_SIDECAR.pi_temperature, sigma_temperature=NO_SIDECAR.sigma_temperature,
                      converted_from={"tool": NO_SIDECAR.tool, "file": model.name,
                                      "sha256": model_sha256(model.read_bytes()),
                                      "verified": f"within {TOLERANCE:g} over {VERIFY_STEPS} steps with "
                                                  f"{', '.join(runtimes)}"})
    reports = write_verified(blob, sidecar, checks, out_path)
    return {"path": str(out_path), "bytes": len(blob), "weights": weights, "verification": reports}
