"""Loading models: our own, another tool's, and every kind of bad one."""
import numpy as np
import pytest

from imps.errors import ModelError
from imps.model.runtime import MDRNN, available_runtimes


def test_both_runtimes_are_installed_here():
    assert available_runtimes() == ["tflite-runtime", "ai-edge-litert"][: len(available_runtimes())]
    assert "ai-edge-litert" in available_runtimes()


def test_sizes_come_from_the_sidecar_and_state_is_carried(tiny_model):
    m = MDRNN(tiny_model, dimension=4, runtime="ai-edge-litert", seed=1)
    assert (m.shape.dimension, m.shape.units, m.shape.layers, m.shape.mixtures) == (4, 16, 2, 5)
    assert all((s == 0).all() for s in m.state())
    row = [0.05, 0.5, 0.5, 0.5]
    first = m.step(row).copy()
    second = m.step(row).copy()
    assert not np.allclose(first, second), "the same input gave the same output: state not carried"
    assert any((s != 0).any() for s in m.state())
    m.reset()
    assert np.allclose(m.step(row), first), "reset did not return to the initial state"


def test_predict_gives_valid_rows(tiny_model):
    m = MDRNN(tiny_model, runtime="ai-edge-litert", seed=2)
    row = [0.05, 0.5, 0.5, 0.5]
    for _ in range(200):
        row = m.predict(row)
        assert len(row) == 4 and row[0] >= 0.001 and all(0.0 <= v <= 1.0 for v in row[1:])


@pytest.mark.parametrize("runtime", ["tflite-runtime", "ai-edge-litert"])
def test_another_tools_model_without_sidecar_loads_and_plays(other_tool_model, tiny_model, runtime, device_python):
    """No signature, a WHILE loop (no output buffers until the first invoke), state outputs in an
    order that says nothing: the probe must pair every state output with its input."""
    import json
    import subprocess
    code = f"""
import json, numpy as np
from imps.model.runtime import MDRNN
theirs = MDRNN({str(other_tool_model)!r}, dimension=4, runtime={runtime!r}, seed=3)
ours = MDRNN({str(tiny_model)!r}, dimension=4, runtime={runtime!r}, seed=3)
worst = 0.0
for row in np.random.default_rng(0).random((100, 4)).astype(np.float32):
    worst = max(worst, float(np.abs(theirs.step(row) - ours.step(row)).max()))
s = theirs.shape
print(json.dumps(dict(worst=worst, sizes=[s.units, s.layers, s.mixtures, s.input_scale],
                      pairing=[theirs.state_pairing, ours.state_pairing], settings=theirs.settings_source,
                      temps=[theirs.pi_temperature, theirs.sigma_temperature], sidecar=theirs.sidecar is None)))
"""
    done = subprocess.run([device_python, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["sidecar"] and got["sizes"] == [16, 2, 5, 10.0]
    assert got["pairing"] == ["probe", "signature names"]
    # Same weights, so the same numbers at every step: the memory is carried where it belongs.
    assert got["worst"] < 1e-4, got
    # No sidecar: the source tool's sampling settings, and it says so.
    assert got["temps"] == [1.5, 0.01] and "IMPSY's defaults" in got["settings"]


@pytest.mark.parametrize("runtime", ["tflite-runtime", "ai-edge-litert"])
def test_a_model_whose_state_cannot_be_paired_is_refused(unpairable_model, runtime, device_python):
    import subprocess
    code = f"from imps.model.runtime import MDRNN\nMDRNN({str(unpairable_model)!r}, runtime={runtime!r})"
    done = subprocess.run([device_python, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1 and "ModelError" in done.stderr, done.stderr
    assert "unpairable.tflite" in done.stderr and "cannot tell which state output carries" in done.stderr


def test_any_runtime_exception_while_loading_is_a_model_error(tiny_model, monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    def broken(self):
        raise RuntimeError("Node number 7 (WHILE) failed to invoke.")
    monkeypatch.setattr(Interpreter, "invoke", broken)
    with pytest.raises(ModelError) as err:
        MDRNN(tiny_model, runtime="ai-edge-litert")
    assert str(tiny_model) in str(err.value) and "failed to invoke" in str(err.value)


def test_fresh_views_path_gives_the_same_numbers(tiny_model):
    """Where a runtime moves its buffers between invokes, every step takes fresh views."""
    usual = MDRNN(tiny_model, runtime="ai-edge-litert")
    fresh = MDRNN(tiny_model, runtime="ai-edge-litert")
    assert not usual.buffers_move
    fresh.buffers_move, fresh.step = True, fresh._step_fresh_views
    fresh.reset()
    for row in np.random.default_rng(1).random((30, 4)).astype(np.float32):
        np.testing.assert_array_equal(usual.step(row), fresh.step(row))


def test_dimension_mismatch_names_file_and_both_sizes(tiny_model):
    with pytest.raises(ModelError) as err:
        MDRNN(tiny_model, dimension=9)
    assert str(tiny_model) in str(err.value) and "dimension 4" in str(err.value) and "configured 9" in str(err.value)


@pytest.mark.parametrize("runtime", ["tflite-runtime", "ai-edge-litert"])
@pytest.mark.parametrize("keep", [0.1, 0.9])
def test_truncated_model_is_an_error_not_a_crash(tmp_path, tiny_model, device_python, runtime, keep):
    """tflite-runtime 2.14 segfaults on these; the box must say what is wrong instead."""
    import subprocess
    bad = tmp_path / "truncated.tflite"
    data = tiny_model.read_bytes()
    bad.write_bytes(data[:int(len(data) * keep)])
    code = f"from imps.model.runtime import MDRNN\nMDRNN({str(bad)!r}, runtime={runtime!r})"
    done = subprocess.run([device_python, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr  # an exception, not a signal
    assert "ModelError" in done.stderr and "truncated.tflite" in done.stderr
    # With the sidecar beside it, the checksum catches it before any runtime sees it.
    bad.with_suffix(".json").write_text(tiny_model.with_suffix(".json").read_text())
    done = subprocess.run([device_python, "-c", code], capture_output=True, text=True)
    assert "checksum does not match its sidecar" in done.stderr


def test_corrupt_and_missing_files_are_clear_errors(tmp_path, tiny_model):
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"definitely not flatbuffers" * 10)
    with pytest.raises(ModelError, match="garbage.tflite"):
        MDRNN(garbage)
    with pytest.raises(ModelError, match="no such file"):
        MDRNN(tmp_path / "missing.tflite")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.tflite").write_bytes(tiny_model.read_bytes())
    with pytest.raises(ModelError, match=r"models: is a directory, not a model file.*holds mine.tflite"):
        MDRNN(tmp_path / "models")


@pytest.mark.parametrize("runtime", ["tflite-runtime", "ai-edge-litert"])
def test_flex_model_is_refused_with_a_clear_error(flex_model, runtime, device_python):
    import subprocess
    code = (f"from imps.model.runtime import MDRNN\nMDRNN({str(flex_model)!r}, runtime={runtime!r})")
    done = subprocess.run([device_python, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "needs TensorFlow Flex" in done.stderr and "flex.tflite" in done.stderr


def test_broken_sidecar_is_a_clear_error(tmp_path, tiny_model):
    model = tmp_path / "m.tflite"
    model.write_bytes(tiny_model.read_bytes())
    model.with_suffix(".json").write_text('{"dimension": 4, "units": 99, "layers": 2, "mixtures": 5}')
    with pytest.raises(ModelError, match="sidecar says"):
        MDRNN(model)
    model.with_suffix(".json").write_text('{"dimension": 4, "units": 16, "layers": 2, "mixtures": 5, "colour": 1}')
    with pytest.raises(ModelError, match="unknown sidecar keys"):
        MDRNN(model)
