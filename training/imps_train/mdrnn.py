"""The MDRNN in Keras: the training model and the single-step inference model.

Training model: (batch, seq, D) -> LSTM x layers -> MDN, trained with the
mixture negative log-likelihood. Inference model: one step, batch 1, with the
LSTM state as explicit inputs and outputs, so the device can carry state
between steps (the model file contract in device/imps/model/model_file.py).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import keras_mdn_layer as mdn  # noqa: E402

from imps.model.model_file import PARAMS_NAME, X_NAME, state_names  # noqa: E402

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


def build_training_model(dimension: int, units: int, layers: int = LAYERS, mixtures: int = MIXTURES,
                         seq_len: int | None = None, learning_rate: float | None = 1e-3) -> keras.Model:
    """The sequence model; compiled for training unless learning_rate is None."""
    inputs = keras.Input(shape=(seq_len, dimension), name="inputs")
    x = inputs
    for i in range(layers):
        x = keras.layers.LSTM(units, return_sequences=True, name=f"lstm{i}")(x)
    outputs = keras.layers.TimeDistributed(mdn.MDN(dimension, mixtures, name="mdn"), name="mdn_seq")(x)
    model = keras.Model(inputs, outputs, name="mdrnn")
    if learning_rate is None:
        return model
    model.compile(loss=mdn.get_mixture_loss_func(dimension, mixtures),
                  optimizer=keras.optimizers.Adam(learning_rate=learning_rate))
    return model


def build_inference_model(dimension: int, units: int, layers: int = LAYERS, mixtures: int = MIXTURES,
                          unroll: bool = True, x_name: str = X_NAME, names: list[str] | None = None) -> keras.Model:
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
    params = mdn.MDN(dimension, mixtures, name="mdn")(last)
    outputs = {PARAMS_NAME: params}
    outputs.update({f"{n}_out": t for n, t in zip(names, state_out)})
    return keras.Model([x_in] + state_in, outputs, name="mdrnn_step")


def copy_weights(trained: keras.Model, step: keras.Model, layers: int = LAYERS) -> None:
    """Copy LSTM and MDN weights from the training model into the inference model."""
    for i in range(layers):
        step.get_layer(f"lstm{i}").set_weights(trained.get_layer(f"lstm{i}").get_weights())
    step.get_layer("mdn").set_weights(trained.get_layer("mdn_seq").layer.get_weights())
