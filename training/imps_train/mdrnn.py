"""The MDRNN in Keras: the training model and the single-step inference model.

Training model: (batch, seq, D) -> LSTM x layers -> an output head, trained
with its negative log-likelihood. Two heads (device/imps/model/heads.py):
``classic``, keras-mdn-layer's MDN (one Gaussian mixture over the whole row),
and ``moves`` (``MovesHead``: dt from its own mixture, each control moving or
staying, a move's change in log-odds from its own mixture). Inference model: one step, batch 1, with the
LSTM state as explicit inputs and outputs, so the device can carry state
between steps (the model file contract in device/imps/model/model_file.py).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import keras_mdn_layer as mdn  # noqa: E402

from imps.model.heads import EDGE, MOVED, params_size  # noqa: E402
from imps.model.model_file import PARAMS_NAME, X_NAME, state_names  # noqa: E402
from imps.model.rows import MIN_DT  # noqa: E402

#: Size presets: name -> LSTM units per layer.
SIZES = {"xxs": 16, "xs": 32, "s": 64, "m": 128, "l": 256, "xl": 512}
LAYERS = 2
MIXTURES = 5


def units_for(size: str | int) -> int:
    if isinstance(size, int) or str(size).isdigit():
        return int(size)
    try:
        return SIZES[size]
    except KeyError:
        raise ValueError(f"unknown size {size!r}, expected one of {', '.join(SIZES)} or a number of units") from None


HEAD_LAYER = {"classic": "mdn", "moves": "moves"}


@keras.saving.register_keras_serializable(package="imps")
class MovesHead(keras.layers.Layer):
    """The moves head's params (heads.py's layout): one Dense layer, the sigmas made positive
    (ELU + 1, as keras-mdn-layer does: builtin TFLite ops only)."""

    def __init__(self, dimension: int, mixtures: int, **kwargs):
        super().__init__(**kwargs)
        self.dimension, self.mixtures = dimension, mixtures
        self.dense = keras.layers.Dense(params_size("moves", dimension, mixtures), name="dense")
        mask = [0.0] * params_size("moves", dimension, mixtures)
        k = mixtures
        for j in range(k):
            mask[k + j] = 1.0                                # dt sigmas
        for i in range(dimension - 1):
            b = 3 * k + i * (1 + 3 * k)
            for j in range(k):
                mask[b + 1 + k + j] = 1.0                    # control i's change sigmas
        self.mask = mask

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, x):
        raw = self.dense(x)
        mask = keras.ops.convert_to_tensor(self.mask, dtype=raw.dtype)
        return raw * (1.0 - mask) + (keras.ops.elu(raw) + 1.0 + 1e-3) * mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (params_size("moves", self.dimension, self.mixtures),)

    def get_config(self):
        return super().get_config() | {"dimension": self.dimension, "mixtures": self.mixtures}


def _log_mixture(x, mus, sigmas, logits):
    """log of a 1-D Gaussian mixture's density at x (last axis: components)."""
    ops = keras.ops
    log_n = -0.5 * ops.square((ops.expand_dims(x, -1) - mus) / sigmas) - ops.log(sigmas) - 0.9189385332046727
    return ops.logsumexp(ops.log_softmax(logits, axis=-1) + log_n, axis=-1)


def moves_loss(dimension: int, mixtures: int, scale: float):
    """Negative log-likelihood of the next row under the moves head. y_true holds the previous row
    and the next, side by side (2D, scaled: Windows(previous=True)); y_pred the head's params."""
    ops, d, k, c = keras.ops, dimension, mixtures, dimension - 1

    def logit(v):
        v = ops.clip(v, EDGE, 1 - EDGE)
        return ops.log(v) - ops.log(1 - v)

    def loss(y_true, y_pred):
        prev, nxt = y_true[..., :d] / scale, y_true[..., d:] / scale
        log_dt = ops.log(ops.maximum(nxt[..., 0], MIN_DT))
        nll = -_log_mixture(log_dt, y_pred[..., :k], y_pred[..., k:2 * k], y_pred[..., 2 * k:3 * k])
        blocks = ops.reshape(y_pred[..., 3 * k:], (-1, c, 1 + 3 * k))     # (rows, control, its block)
        v, v_next = ops.reshape(prev[..., 1:], (-1, c)), ops.reshape(nxt[..., 1:], (-1, c))
        moved = ops.cast(ops.abs(v_next - v) > MOVED, y_pred.dtype)
        m = blocks[..., 0]
        stay_or_move = ops.softplus(m) - moved * m                # -log P(moved or not), P(move) = sigmoid(m)
        change = logit(v_next) - logit(v)
        how_far = -_log_mixture(change, blocks[..., 1:1 + k], blocks[..., 1 + k:1 + 2 * k], blocks[..., 1 + 2 * k:])
        controls = ops.sum(stay_or_move + moved * how_far, axis=-1)
        return nll + ops.reshape(controls, ops.shape(nll))

    return loss


def _head(head: str, dimension: int, mixtures: int):
    if head == "classic":
        return mdn.MDN(dimension, mixtures, name="mdn")
    if head == "moves":
        return MovesHead(dimension, mixtures, name="moves")
    raise ValueError(f"unknown head {head!r}, expected classic or moves")


def build_training_model(dimension: int, units: int, layers: int = LAYERS, mixtures: int = MIXTURES,
                         seq_len: int | None = None, learning_rate: float | None = 1e-3,
                         head: str = "classic", input_scale: float = 10.0) -> keras.Model:
    """The sequence model; compiled for training unless learning_rate is None."""
    inputs = keras.Input(shape=(seq_len, dimension), name="inputs")
    x = inputs
    for i in range(layers):
        x = keras.layers.LSTM(units, return_sequences=True, name=f"lstm{i}")(x)
    outputs = keras.layers.TimeDistributed(_head(head, dimension, mixtures), name=f"{HEAD_LAYER[head]}_seq")(x)
    model = keras.Model(inputs, outputs, name="mdrnn")
    if learning_rate is None:
        return model
    loss = (mdn.get_mixture_loss_func(dimension, mixtures) if head == "classic"
            else moves_loss(dimension, mixtures, input_scale))
    model.compile(loss=loss, optimizer=keras.optimizers.Adam(learning_rate=learning_rate))
    return model


def build_inference_model(dimension: int, units: int, layers: int = LAYERS, mixtures: int = MIXTURES,
                          unroll: bool = True, x_name: str = X_NAME, names: list[str] | None = None,
                          head: str = "classic") -> keras.Model:
    """One step, batch 1, explicit state: inputs x, h0, c0, ...; outputs params, h0, c0, ...

    unroll=True avoids a WHILE loop in the .tflite (about three times faster per step).
    ``x_name`` and ``names`` only change tensor names (to mimic other tools' models in tests).
    """
    x_in = keras.Input(batch_shape=(1, 1, dimension), name=x_name)
    names = names or state_names(layers)
    state_in = [keras.Input(batch_shape=(1, units), name=n) for n in names]
    x = x_in
    state_out = []
    for i in range(layers):
        lstm = keras.layers.LSTM(units, return_sequences=True, return_state=True, unroll=unroll, name=f"lstm{i}")
        x, h, c = lstm(x, initial_state=[state_in[2 * i], state_in[2 * i + 1]])
        state_out += [h, c]
    last = keras.layers.Reshape((units,), name="last")(x)
    params = _head(head, dimension, mixtures)(last)
    outputs = {PARAMS_NAME: params}
    outputs.update({f"{n}_out": t for n, t in zip(names, state_out)})
    return keras.Model([x_in] + state_in, outputs, name="mdrnn_step")


def copy_weights(trained: keras.Model, step: keras.Model, layers: int = LAYERS, head: str = "classic") -> None:
    """Copy LSTM and head weights from the training model into the inference model."""
    for i in range(layers):
        step.get_layer(f"lstm{i}").set_weights(trained.get_layer(f"lstm{i}").get_weights())
    name = HEAD_LAYER[head]
    step.get_layer(name).set_weights(trained.get_layer(f"{name}_seq").layer.get_weights())
