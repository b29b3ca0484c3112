"""IMPSY's own models, logs and configs in the box, proven with IMPSY's own code.

IMPSY (the `impsy` package from PyPI) runs in its own environment (.venv/impsy)
through training/imps_train/impsy_side.py; the box runs in the device
environment. Nothing here imitates IMPSY: its model builder, converter,
TfliteMDRNN, logging and dataset code do IMPSY's half.
"""
import json
import signal
import subprocess
import time

import pytest

from imps.model.model_file import NO_SIDECAR
from notify_socket import NotifySocket
from support import ImpsRun

RUNTIMES = ["tflite-runtime", "ai-edge-litert"]
DIMENSIONS = [2, 4, 9]


@pytest.fixture(scope="session")
def impsy_traces(impsy, impsy_models, tmp_path_factory) -> dict:
    """IMPSY's TfliteMDRNN.generate over 200 steps for each model: rows fed and params predicted."""
    out = tmp_path_factory.mktemp("impsy-traces")
    traces = {}
    for d, model in impsy_models.items():
        path = out / f"trace-d{d}.npz"
        info = impsy("trace", model, path, "--steps", 200, "--seed", d)
        traces[d] = (path, info)
    return traces


@pytest.fixture(scope="session")
def impsy_flex_model(impsy, tmp_path_factory):
    return impsy("flex", tmp_path_factory.mktemp("impsy-flex"), 4)["model"]


def check_model(device_python, *args):
    return subprocess.run([device_python, "-m", "imps", "check-model", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_the_impsy_environment_is_impsys_own(impsy):
    v = impsy("version")
    assert v["impsy"] == "1.2.1"
    assert v["tensorflow"].startswith("2.21."), "IMPSY 1.2.1 requires TensorFlow >= 2.21, < 2.22"


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_the_box_predicts_what_impsys_own_tflite_mdrnn_predicts(impsy_models, impsy_traces, device_python,
                                                              dimension, runtime):
    """Same mixture parameters as IMPSY's TfliteMDRNN at every one of 200 steps, within 1e-4."""
    trace, info = impsy_traces[dimension]
    assert info["steps"] == 200 and info["dimension"] == dimension
    # The box's defaults for a model without a sidecar are IMPSY's own, read from IMPSY itself.
    assert (info["pi_temp"], info["sigma_temp"]) == (NO_SIDECAR.pi_temperature, NO_SIDECAR.sigma_temperature)
    model = impsy_models[dimension]
    assert not model.with_suffix(".json").exists()
    done = check_model(device_python, model, "--reference", trace, "--tolerance", "1e-4", "--runtime", runtime)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"OK with {runtime}: D={dimension} units=16 layers=2 mixtures=5 scale=10" in out
    assert "matches reference over 200 steps" in out
    assert "pi_temperature=1.5 sigma_temperature=0.01 (from IMPSY's defaults" in out
    assert "state paired by probe" in out


@pytest.mark.parametrize("layers", [1, 3])
def test_one_and_three_layer_impsy_models_pair_too(impsy, tmp_path, device_python, layers):
    """IMPSY's size xl has 3 layers; the probe must order the layers, not only h and c."""
    model = impsy("models", tmp_path, 3, "--units", 24, "--layers", layers)["models"][0]
    trace = tmp_path / "trace.npz"
    impsy("trace", model, trace, "--steps", 200, "--seed", layers)
    done = check_model(device_python, model, "--reference", trace, "--runtime", "ai-edge-litert")
    assert done.returncode == 0, done.stderr
    assert f"layers={layers}" in done.stdout and "matches reference over 200 steps" in done.stdout


def test_the_reference_check_has_teeth(impsy_models, impsy_traces, device_python):
    """Pairing IMPSY's states by sorted names (the old fallback) drifts far from IMPSY at once."""
    code = """
import dataclasses, json, sys, numpy as np
from imps.model.runtime import MDRNN
m = MDRNN(sys.argv[1], runtime="ai-edge-litert")
names = {d["index"]: d["name"] for d in m.interpreter.get_input_details() + m.interpreter.get_output_details()}
m._map = dataclasses.replace(m._map, states_in=sorted(m._map.states_in, key=names.get),
                             states_out=sorted(m._map.states_out, key=names.get))
m._take_views(); m.reset()
ref = np.load(sys.argv[2])
print(json.dumps(max(float(np.abs(m.step(r) - p).max()) for r, p in zip(ref["rows"], ref["params"]))))
"""
    done = subprocess.run([device_python, "-c", code, str(impsy_models[9]), str(impsy_traces[9][0])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) > 1e-2


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_impsys_flex_models_are_refused_clearly(impsy_flex_model, device_python, runtime):
    """IMPSY 0.5 converted with Select TF ops; 1.x's converter no longer can. The box says what is wrong."""
    done = check_model(device_python, impsy_flex_model, "--runtime", runtime)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]   # (the runtime itself may print an INFO line first)
    assert last.startswith("imps: error: model ") and "impsy-flex-d4.tflite" in last
    assert "needs TensorFlow Flex (Select TF) ops" in done.stderr and "Traceback" not in done.stderr


def test_impsys_optimised_models_need_ai_edge_litert_and_auto_finds_it(impsy, tmp_path, device_python):
    """`impsy convert-tflite --optimise` quantises weights with operator versions tflite-runtime 2.14
    does not know: refused there with a message saying what to do, played by "auto" with ai-edge-litert."""
    model = impsy("models", tmp_path, 4, "--optimise")["models"][0]
    trace = tmp_path / "trace.npz"
    impsy("trace", model, trace, "--steps", 200, "--seed", 1)
    done = check_model(device_python, model, "--runtime", "tflite-runtime")
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 2 and "uses operators newer than tflite-runtime supports" in last
    assert 'set [model] runtime = "ai-edge-litert"' in last and "Traceback" not in done.stderr
    done = check_model(device_python, model, "--runtime", "auto", "--reference", trace)
    assert done.returncode == 0, done.stderr
    assert "OK with ai-edge-litert" in done.stdout and "matches reference over 200 steps" in done.stdout


def box_config(tmp_path, model, dimension, runtime, sound_port, mode="duet") -> str:
    return (f'[model]\npath = "{model}"\nruntime = "{runtime}"\n'
            f'[engine]\nmode = "{mode}"\ndimension = {dimension}\n'
            f'[osc]\nsound_port = {sound_port}\n'
            f'[log]\ndirectory = "{tmp_path / "logs"}"\n')


def start_box(tmp_path, text, sd, python) -> ImpsRun:
    config = tmp_path / "box.toml"
    config.write_text(text)
    return ImpsRun(python, "--config", config, "-q", sd=sd)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("dimension", DIMENSIONS)
def test_imps_run_plays_an_impsy_model_without_a_sidecar(tmp_path, impsy_models, device_python, sound,
                                                         dimension, runtime):
    text = box_config(tmp_path, impsy_models[dimension], dimension, runtime, sound.port)
    with NotifySocket() as sd, start_box(tmp_path, text, sd, device_python) as box:
        box.wait_for("READY", timeout=60)
        played = sound.wait_for("/model", 10, timeout=30)
        assert box.stop() == 0, box.stderr
    err = box.stderr
    assert all(len(args) == dimension - 1 and all(0.0 <= v <= 1.0 for v in args) for _, args in played)
    assert f"({runtime}, 16 units)" in err
    assert "has no sidecar" in err and "IMPSY's defaults: input scale 10, pi temperature 1.5, sigma temperature 0.01" in err
    assert "Traceback" not in err


def test_sighup_to_an_unloadable_model_of_any_kind_is_refused(tmp_path, impsy_models, impsy_flex_model,
                                                            unpairable_model, device_python, sound):
    """Flex ops, a truncated IMPSY file, state that cannot be paired, the wrong dimension:
    each reload is refused with one line and the IMPSY model already playing plays on."""
    good = impsy_models[4]
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(good.read_bytes()[:5000])
    bad = [impsy_flex_model, truncated, unpairable_model, impsy_models[9]]
    for runtime in RUNTIMES:
        text = box_config(tmp_path, good, 4, runtime, sound.port)
        with NotifySocket() as sd, start_box(tmp_path, text, sd, device_python) as box:
            box.wait_for("READY", timeout=60)
            for n, model in enumerate(bad, start=2):
                (tmp_path / "box.toml").write_text(text.replace(str(good), str(model)))
                box.proc.send_signal(signal.SIGHUP)
                box.wait_for("READY", count=n, timeout=60)
                sound.wait_for("/model", 3, timeout=30, since=time.monotonic())
            assert box.stop() == 0, box.stderr
        err = box.stderr
        assert "Traceback" not in err
        refused = [line for line in err.splitlines() if "reload refused" in line]
        assert len(refused) == len(bad), err
        for line, model in zip(refused, bad):
            assert str(model) in line, line
        assert "needs TensorFlow Flex" in refused[0] and "cannot tell which state output" in refused[2]
        assert "does not match the configured 4" in refused[3]


# -- logs both ways -----------------------------------------------------------------------

def box_dataset_rows(log_dir, out):
    """`imps-train dataset LOG_DIR -o OUT` (pauses up to an hour kept, so nothing is capped)."""
    from imps.model.dataset import load_dataset
    from imps_train.cli import main
    assert main(["dataset", str(log_dir), "-o", str(out), "--max-dt", "3600"]) == 0
    return load_dataset(out).performances()


def impsy_dataset_rows(impsy, log_dir, dimension, out):
    """IMPSY's own dataset command over the same directory."""
    import numpy as np
    info = impsy("dataset", log_dir, dimension, out)
    with np.load(out.with_suffix(".rows.npz")) as z:
        return [z[f"arr_{i}"] for i in range(info["performances"])]


@pytest.mark.parametrize("dimension", [4, 9])
def test_impsys_dataset_reads_a_log_the_box_wrote(tmp_path, impsy, dimension):
    import datetime as dt
    import numpy as np
    from imps.io.interaction_log import LogWriter
    rng = np.random.default_rng(dimension)
    logs = tmp_path / "logs"
    when = dt.datetime(2026, 11, 29, 21, 0, 0, 123456)
    with LogWriter(logs, dimension) as writer:           # the box's own log writer
        for i in range(150):
            when += dt.timedelta(microseconds=int(rng.integers(1_000, 2_000_000)))
            writer.write("rnn" if i % 4 == 3 else "interface", rng.random(dimension - 1).tolist(), when)
    theirs = impsy_dataset_rows(impsy, logs, dimension, tmp_path / "impsy.npz")
    ours = box_dataset_rows(logs, tmp_path / "box.npz")
    assert len(theirs) == len(ours) == 1
    assert theirs[0].shape == (112, dimension)           # 113 performer events; the first has no dt
    np.testing.assert_array_equal(ours[0], theirs[0])


@pytest.mark.parametrize("dimension", [4, 9])
def test_imps_train_dataset_reads_a_log_impsy_wrote(tmp_path, impsy, dimension):
    import numpy as np
    from imps.io.interaction_log import read_log
    logs = tmp_path / "logs"
    made = impsy("log", logs, dimension, "--events", 150, "--seed", dimension)   # IMPSY's own logging code
    records = read_log(made["log"])
    assert records.skipped == [] and records.sources.count("rnn") == 30
    theirs = impsy_dataset_rows(impsy, logs, dimension, tmp_path / "impsy.npz")
    ours = box_dataset_rows(logs, tmp_path / "box.npz")
    assert theirs[0].shape == (119, dimension)
    np.testing.assert_array_equal(ours[0], theirs[0])


def test_imps_run_runs_an_impsy_config(tmp_path, impsy_models, device_python, sound):
    """`imps run --config config.toml` with IMPSY's file: it plays, and names what it cannot honour."""
    model = tmp_path / "models" / impsy_models[4].name
    model.parent.mkdir()
    model.write_bytes(impsy_models[4].read_bytes())
    config = (
        'title = "IMPSY to the box"\nlog_input = true\nlog_predictions = false\nverbose = true\n'
        '[interaction]\nmode = "battle"\nthreshold = 0.1\ninput_thru = false\n'
        f'[model]\ndimension = 4\nfile = "models/{model.name}"\nsize = "xxs"\nsigmatemp = 0.01\npitemp = 1\n'
        'timescale = 1\n'
        f'[osc]\nserver_ip = "127.0.0.1"\nserver_port = 0\nclient_ip = "0.0.0.0"\nclient_port = {sound.port}\n')
    path = tmp_path / "config.toml"
    path.write_text(config)
    with NotifySocket() as sd, ImpsRun(device_python, "--config", path, "-q", "--log-dir", tmp_path / "logs",
                                       sd=sd, cwd=tmp_path / "models") as box:
        ready = box.wait_for("READY", timeout=60)
        assert "mode duet" in ready.fields["STATUS"]
        played = sound.wait_for("/model", 10, timeout=30)
        assert box.stop() == 0, box.stderr
    err = box.stderr
    assert all(len(args) == 3 for _, args in played)
    assert f"{model.name} (" in err                      # the model path was resolved against the config's folder
    for key in ("log_predictions", "verbose", "[interaction] input_thru"):
        assert f"not honoured: {key}" in err, key
    assert "Traceback" not in err
