"""Shared fixtures: the real datasets, the two environments, a tiny real model."""
from __future__ import annotations

import os
import sys
import tty
from pathlib import Path

import pytest

from support import DATASETS, box_overrides

ROOT = Path(__file__).resolve().parents[1]
DEVICE_PYTHON = os.environ.get("IMPS_DEVICE_PYTHON", str(ROOT / ".venv" / "device" / "bin" / "python"))


@pytest.fixture(scope="session")
def device_python() -> str:
    if not Path(DEVICE_PYTHON).exists():
        pytest.fail(f"device environment missing at {DEVICE_PYTHON}: run `make setup`")
    return DEVICE_PYTHON


@pytest.fixture(scope="session")
def lightpad_12k():
    from imps_train.collate import from_published_npz
    dataset, _ = from_published_npz(DATASETS / "lightpad-4d-12k.npz")
    return dataset


def train_and_export(dataset, out_dir: Path, size="xxs", scale=10.0, name="tiny.tflite"):
    """A real (tiny) training run and verified export: seconds, not minutes."""
    from imps_train.export import export
    from imps_train.train import TrainConfig, train
    config = TrainConfig(size=size, epochs=1, windows_per_epoch=128, val_windows=64, input_scale=scale,
                         seq_len=20, batch_size=32)
    train(dataset, out_dir / "run", config, progress=False)
    export(out_dir / "run", out_dir / name)
    return out_dir / name


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, lightpad_12k) -> Path:
    """A 4-D xxs model trained for one short epoch on the real 12K LightPad data."""
    return train_and_export(lightpad_12k, tmp_path_factory.mktemp("tiny"))


sys.path.insert(0, str(ROOT / "tests"))
from osc_listener import SoundListener  # noqa: E402  (a stand-in sound engine)


@pytest.fixture
def sound():
    """A stand-in sound engine on 127.0.0.1 collecting OSC messages with arrival times."""
    listener = SoundListener()
    yield listener
    listener.close()


@pytest.fixture
def pty_pair():
    """A raw pseudo-terminal pair: (master fd, slave path)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def convert_step_model(step, path: Path, flex: bool = False) -> Path:
    """Convert a Keras step model as another MDRNN tool would (no sidecar); flex=True keeps TF ops."""
    import contextlib
    import io
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(step)
    if flex:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        converter._experimental_lower_tensor_list_ops = False
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with contextlib.redirect_stdout(io.StringIO()):
        path.write_bytes(converter.convert())
    return path


def convert_like_impsy(model, path: Path) -> Path:
    """Convert as IMPSY 1.x's converter does: a batch-1 concrete function, builtin ops only.
    The result has no signature, and a non-unrolled LSTM becomes WHILE ops."""
    import contextlib
    import io
    import tensorflow as tf
    specs = [tf.TensorSpec([1] + list(t.shape[1:]), tf.float32, name=t.name) for t in model.inputs]
    fn = tf.function(lambda *args: model(list(args)), input_signature=specs).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with contextlib.redirect_stdout(io.StringIO()):
        path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="session")
def other_tool_model(tmp_path_factory, tiny_model) -> Path:
    """The tiny model's weights as another tool publishes them: no sidecar, no signature, a
    WHILE-loop LSTM (no output buffers before the first invoke), IMPSY's input names, and the
    outputs in a list whose order says nothing (c1, h0, params, c0, h1)."""
    import keras
    from imps_train import mdrnn
    from imps_train.train import load_run
    run_dir = tiny_model.parent / "run"
    trained = mdrnn.build_training_model(4, 16, 2, 5, 20, learning_rate=None)
    trained.load_weights(str(run_dir / load_run(run_dir)["weights"]))
    names = ["state_h_0", "state_c_0", "state_h_1", "state_c_1"]
    step = mdrnn.build_inference_model(4, 16, 2, 5, unroll=False, x_name="inputs", names=names)
    mdrnn.copy_weights(trained, step)
    out = step.output
    shuffled = keras.Model(step.inputs, [out["state_c_1_out"], out["state_h_0_out"], out["params"],
                                         out["state_c_0_out"], out["state_h_1_out"]])
    path = convert_like_impsy(shuffled, tmp_path_factory.mktemp("other") / "other-tool.tflite")
    assert not path.with_suffix(".json").exists()
    return path


@pytest.fixture(scope="session")
def unpairable_model(tmp_path_factory) -> Path:
    """Two 'state' tensors that are passed through, not an LSTM: no pairing can be established."""
    import keras
    x = keras.Input(batch_shape=(1, 1, 4), name="inputs")
    s0 = keras.Input(batch_shape=(1, 8), name="state_h_0")
    s1 = keras.Input(batch_shape=(1, 8), name="state_c_0")
    params = keras.layers.Dense(2 * 5 * 4 + 5)(keras.layers.Reshape((4,))(x))
    model = keras.Model([x, s0, s1], [params, keras.layers.Rescaling(0.5)(s0), keras.layers.Rescaling(0.5)(s1)])
    return convert_like_impsy(model, tmp_path_factory.mktemp("unpairable") / "unpairable.tflite")


@pytest.fixture(scope="session")
def flex_model(tmp_path_factory) -> Path:
    """A model that needs TensorFlow Flex ops (a rolled LSTM kept as TensorList ops)."""
    from imps_train import mdrnn
    step = mdrnn.build_inference_model(4, 8, 1, 2, unroll=False)
    return convert_step_model(step, tmp_path_factory.mktemp("flex") / "flex.tflite", flex=True)


# -- IMPSY's own code, in IMPSY's own environment (.venv/impsy, `make impsy-env`) ----------

@pytest.fixture(scope="session")
def impsy():
    """Run a training/imps_train/impsy_side.py subcommand with IMPSY's code; returns its JSON result."""
    from imps_train.bench_impsy import impsy_python, impsy_side
    if not Path(impsy_python()).exists():
        pytest.fail(f"IMPSY's environment missing at {impsy_python()}: run `make impsy-env`")
    return impsy_side


@pytest.fixture(scope="session")
def impsy_models(impsy, tmp_path_factory) -> dict:
    """IMPSY inference models (random weights) for D = 2, 4 and 9, built by IMPSY's
    build_mdrnn_model and converted by IMPSY's model_to_tflite, once per test run."""
    import re
    made = impsy("models", tmp_path_factory.mktemp("impsy-models"), 2, 4, 9)["models"]
    return {int(re.search(r"-dim(\d+)-", p).group(1)): Path(p) for p in made}


@pytest.fixture
def boxes(tmp_path, sound):
    """``boxes(mode, model=None, **sections)`` starts a real box (support.box_overrides) playing to
    the stand-in sound engine; every box it started is stopped after the test."""
    from imps.box.app import Box
    from imps.box.config import load_config
    started = []

    def make(mode="user", model=None, **sections):
        box = Box(load_config(None, box_overrides(tmp_path, sound.port, mode, model, **sections))).start()
        started.append(box)
        return box
    yield make
    for box in started:
        box.stop()
