"""`imps-train convert-impsy`: IMPSY's models in the box's own unrolled format, proven with IMPSY's own code.

The models are built and converted by IMPSY (training/imps_train/impsy_side.py in
.venv/impsy); the reference is IMPSY's own TfliteMDRNN.generate over 200 steps
(the `impsy_traces` of tests/test_impsy.py), checked in both runtimes.
"""
from pathlib import Path

import pytest

from imps.errors import ModelError
from imps.model.model_file import NO_SIDECAR, model_sha256, read_sidecar
from imps_train import convert_impsy as ci
from imps_train.cli import main
from test_impsy import RUNTIMES, check_model, impsy_traces  # noqa: F401  (a fixture, shared)


def operators(path) -> set[str]:
    """The operator kinds in every subgraph of a .tflite."""
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.read_model(str(path))
    names = ci._operator_names()
    return {names[max(model.operatorCodes[op.opcodeIndex].builtinCode,
                      model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)]
            for g in model.subgraphs for op in g.operators}


def convert(model, out, capsys) -> str:
    assert main(["convert-impsy", str(model), "-o", str(out)]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def assert_matches_impsy(device_python, model, trace, dimension, layers, units):
    for runtime in RUNTIMES:
        done = check_model(device_python, model, "--reference", trace, "--tolerance", "1e-4", "--runtime", runtime)
        assert done.returncode == 0, done.stderr
        assert (f"OK with {runtime}: D={dimension} units={units} layers={layers} mixtures=5 scale=10 "
                f"pi_temperature=1.5 sigma_temperature=0.01 (from its sidecar; state paired by signature names)"
                in done.stdout)
        assert "matches reference over 200 steps" in done.stdout


@pytest.fixture(scope="module")
def converted(impsy_models, tmp_path_factory) -> dict:
    """Each of IMPSY's D = 2, 4, 9 models converted once (the command's own output kept)."""
    out = tmp_path_factory.mktemp("converted")
    made = {}
    for d, model in impsy_models.items():
        result = ci.convert_impsy(model, out / f"box-d{d}.tflite")
        made[d] = result
    return made


@pytest.mark.parametrize("dimension", [2, 4, 9])
def test_a_converted_impsy_model_predicts_what_impsys_tflite_mdrnn_predicts(converted, impsy_models, impsy_traces,
                                                                            device_python, dimension):
    """The converted model against IMPSY's own TfliteMDRNN.generate, 200 steps, both runtimes, 1e-4."""
    result = converted[dimension]
    trace, _ = impsy_traces[dimension]
    assert_matches_impsy(device_python, result["path"], trace, dimension, 2, 16)
    assert [r.split(": OK with ")[1].split(":")[0] for r in result["verification"]] == RUNTIMES


@pytest.mark.parametrize("dimension", [2, 4, 9])
def test_the_converted_model_is_unrolled_and_says_where_it_came_from(converted, impsy_models, dimension):
    result = converted[dimension]
    original = impsy_models[dimension]
    assert "WHILE" in operators(original)
    ops = operators(result["path"])
    assert "WHILE" not in ops and "FULLY_CONNECTED" in ops
    sidecar = read_sidecar(result["path"])
    assert sidecar.sha256 == model_sha256(open(result["path"], "rb").read())
    assert (sidecar.dimension, sidecar.units, sidecar.layers, sidecar.mixtures) == (dimension, 16, 2, 5)
    # It plays as IMPSY plays it: IMPSY's scale and temperatures.
    assert (sidecar.input_scale, sidecar.pi_temperature, sidecar.sigma_temperature) == \
        (NO_SIDECAR.input_scale, NO_SIDECAR.pi_temperature, NO_SIDECAR.sigma_temperature)
    assert sidecar.converted_from == {
        "tool": "IMPSY", "file": original.name, "sha256": model_sha256(original.read_bytes()),
        "verified": "within 0.0001 over 200 steps with tflite-runtime, ai-edge-litert"}


@pytest.mark.parametrize("layers", [1, 3])
def test_one_and_three_layer_impsy_models_convert_from_tflite_keras_and_checkpoint(impsy, tmp_path, device_python,
                                                                           capsys, layers):
    """IMPSY's size xl has 3 layers; the layers must come out in order, from each file IMPSY writes:
    the .tflite, the inference model's .keras and a training checkpoint's .keras."""
    model = impsy("models", tmp_path, 3, "--units", 24, "--layers", layers, "--keras", "--seed", 7)["models"][0]
    trace = tmp_path / "trace.npz"
    impsy("trace", model, trace, "--steps", 200, "--seed", layers)
    keras_file = tmp_path / Path(model).name.replace(".tflite", ".keras")
    checkpoint = tmp_path / Path(model).name.replace(".tflite", "-ckpt.keras")
    for source in (Path(model), keras_file, checkpoint):
        out = tmp_path / f"box-from-{source.stem[-4:]}{source.suffix}.tflite"
        report = convert(source, out, capsys)
        assert f"IMPSY's D=3 units=24 layers={layers} mixtures=5 model, unrolled for the box" in report
        assert report.count("matches reference over 200 steps") == 2
        assert_matches_impsy(device_python, out, trace, 3, layers, 24)


def test_the_weights_are_read_by_what_they_do_not_by_luck(impsy_models, tmp_path):
    """Swapping a layer's kernel for its recurrent matrix (same shape in layer 1) is caught by the
    verification, and nothing is written: the 200-step check is what makes a conversion trusted."""
    model = impsy_models[4]
    weights = ci.read_tflite(model)
    kernel, recurrent, bias = weights.lstm[1]
    assert kernel.shape == recurrent.shape
    real = ci.read_tflite
    swapped = dict(vars(weights))
    swapped["lstm"] = [weights.lstm[0], (recurrent, kernel, bias)]
    ci.read_tflite = lambda path: ci.ImpsyWeights(**swapped)
    try:
        with pytest.raises(ModelError, match="failed verification"):
            ci.convert_impsy(model, tmp_path / "wrong.tflite", ["ai-edge-litert"])
    finally:
        ci.read_tflite = real
    assert list(tmp_path.iterdir()) == []


def refused(model, tmp_path, capsys) -> str:
    out = tmp_path / "out" / "converted.tflite"
    assert main(["convert-impsy", str(model), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert not out.exists() and not out.with_suffix(".json").exists()
    lines = [line for line in err.splitlines() if line.startswith("imps-train: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_an_optimised_impsy_model_is_refused_in_one_line(impsy, tmp_path, capsys):
    model = impsy("models", tmp_path, 4, "--optimise")["models"][0]
    line = refused(model, tmp_path, capsys)
    assert f"model {model}: cannot convert it: its weights are quantised" in line and "without --optimise" in line


def test_an_impsy_flex_model_is_refused_in_one_line(impsy, tmp_path, capsys):
    model = impsy("flex", tmp_path, 4)["model"]
    line = refused(model, tmp_path, capsys)
    assert "cannot convert it: it needs TensorFlow Flex ops" in line and "IMPSY 1.x" in line


def test_models_that_are_not_impsys_are_refused_in_one_line(tmp_path, capsys, unpairable_model):
    from imps.box.config import DEFAULT_MODEL
    line = refused(DEFAULT_MODEL, tmp_path, capsys)       # the box's own: nothing to convert
    assert "cannot convert it: no LSTM loops (WHILE operators) in it" in line
    assert "a model of the box's own needs no conversion" in line
    line = refused(unpairable_model, tmp_path, capsys)    # another tool's graph, no LSTM in it
    assert "cannot convert it: no LSTM loops" in line
    weights = tmp_path / "model.h5"
    weights.write_bytes(b"\x89HDF\r\n\x1a\n")
    assert "a .h5 holds weights without the model's sizes" in refused(weights, tmp_path, capsys)
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\0" * 64)
    assert "cannot convert it: not a readable TFLite file" in refused(garbage, tmp_path, capsys)
    not_a_model = tmp_path / "not-a-model.keras"
    not_a_model.write_text("{}")
    assert "cannot convert it: Keras cannot load it" in refused(not_a_model, tmp_path, capsys)
    assert "no such file" in refused(tmp_path / "missing.tflite", tmp_path, capsys)


def test_bench_impsy_times_the_converted_model_beside_impsy_and_the_box():
    """`make bench-impsy`'s rows (figures, not a timing assertion): IMPSY, the box on IMPSY's file and
    on the converted one, in each runtime, with a ratio per row."""
    from imps_train.bench_impsy import bench
    lines = []
    result = bench(None, 2, 16, blocks=2, block=5, rounds=1, out=lines.append)
    assert set(result["box"]) == {*RUNTIMES, *(f"converted {r}" for r in RUNTIMES)}
    for row in result["box"].values():
        assert row["predict_s"] > 0 and row["ratio"] > 0 and row["peak_rss_mb"] > 0
    table = lines[-1]
    for label in ("IMPSY generate", "box tflite-runtime", "converted, tflite-runtime", "converted, ai-edge-litert"):
        assert label in table
    assert "load average" in table
