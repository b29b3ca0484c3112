"""The benchmark suite's plumbing: schema, a tiny real run, the plots, `make bench HOST=`.

Timings themselves are never asserted (figures are measured by
benchmarks, not by timed tests); only that every measurement is there, in the
documented shape.
"""
from __future__ import annotations

import csv
import json
import os
import resource
import subprocess
import textwrap
from pathlib import Path

import pytest

from imps.bench import bench
from imps.model.model_file import read_sidecar

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "device" / "imps" / "models" / "bench"
MAKE_NO_SETUP = ["-o", ".venv/work/.installed", "-o", ".venv/device/.installed"]


def fixture_results(out_dir: Path, hostname: str = "fixture-box", pi_model: str | None = None) -> Path:
    """A small but complete result set written by the suite's own writer."""
    rows = []
    for runtime, slow in (("tflite-runtime", 1.0), ("ai-edge-litert", 1.1)):
        for units, d in [(u, 9) for u in bench.UNITS_SWEEP] + [(64, d) for d in bench.DIMENSION_SWEEP if d != 9]:
            inv = slow * (0.002 + units * units * 2e-6 + d * 1e-4)
            common = dict(runtime=runtime, threads=1, units=units, dimension=d, layers=2, mixtures=5,
                          model=f"u{units}-d{d}.tflite")
            rows.append(bench.row("invoke", bench.summary([inv * f for f in (0.9, 1.0, 1.1, 1.5)]), **common))
            pred = bench.summary([(inv + 0.01) * f for f in (0.9, 1.0, 1.1, 1.5)])
            rows.append(bench.row("predict", pred, ratio=pred["median"] / (inv * 1.05), **common))
        rows.append(bench.row("cold_start", bench.summary([300.0, 320.0]), runtime=runtime, threads=1))
        rows.append(bench.row("cold_start_hwm", bench.summary([46.0, 46.5], "MB"), runtime=runtime, threads=1))
    rows.append(bench.row("schedule_error", bench.summary([0.01, 0.02, 0.5]), runtime="tflite-runtime",
                          note="box duet"))
    machine = {"hostname": hostname, "date": "2026-11-26T12:00:00+00:00", "cpu_model": "fixture CPU",
               "cores": 4, "pi_model": pi_model, "runtimes": {"tflite-runtime": "2.14.0"}}
    _, json_path = bench.write_results(out_dir, machine, rows)
    return json_path


# -- schema and statistics -----------------------------------------------------------

def test_summary_statistics():
    s = bench.summary([float(v) for v in range(1, 101)])
    assert s["n"] == 100 and s["unit"] == "ms"
    assert s["median"] == pytest.approx(50.5)
    assert s["q1"] == pytest.approx(25.75) and s["q3"] == pytest.approx(75.25)
    assert s["iqr"] == pytest.approx(49.5)
    assert s["p99"] == pytest.approx(99.01)
    assert (s["min"], s["max"], s["mean"]) == (1.0, 100.0, 50.5)
    assert bench.summary([])["n"] == 0


def test_written_csv_and_json_agree(tmp_path):
    json_path = fixture_results(tmp_path)
    doc = json.loads(json_path.read_text())
    assert doc["format"] == bench.SCHEMA
    with open(tmp_path / "bench.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == bench.COLUMNS
        csv_rows = list(reader)
    assert len(csv_rows) == len(doc["rows"])
    for c, j in zip(csv_rows, doc["rows"]):
        assert set(j) == set(bench.COLUMNS)
        assert c["benchmark"] == j["benchmark"]
        assert float(c["median"]) == pytest.approx(j["median"], rel=1e-5)
    assert set(r["benchmark"] for r in doc["rows"]) <= set(doc["benchmarks"])


def test_committed_benchmark_models_cover_both_sweeps():
    """The device needs them without TensorFlow: every size is committed, with its sidecar."""
    found = bench.sweep_models(MODELS)
    assert len(found) == 12
    for units, d, path in found:
        sc = read_sidecar(path)
        assert (sc.units, sc.dimension, sc.layers, sc.mixtures) == (units, d, 2, 5)
        assert "random" in sc.training["purpose"]
    total = sum(p.stat().st_size for _, _, p in found)
    assert total < 25e6, f"benchmark models are {total / 1e6:.1f} MB: too large to ship with every deploy"


def test_bench_models_sweep_matches_the_device_sweep():
    from imps_train import bench_models
    assert bench_models.UNITS_SWEEP == bench.UNITS_SWEEP
    assert bench_models.DIMENSION_SWEEP == bench.DIMENSION_SWEEP
    assert sorted(bench_models.sweep()) == sorted((u, d) for u, d, _ in bench.sweep_models(MODELS))


# -- a tiny real run, in the device environment -------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, device_python):
    out = tmp_path_factory.mktemp("bench")
    r = subprocess.run([device_python, "-m", "imps", "bench", "--units", "16", "--dimensions", "2",
                        "--iterations", "20", "--warmup", "2", "--cold-starts", "1", "--e2e-seconds", "0.5",
                        "--runtime", "tflite-runtime", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return out, r.stdout


def test_tiny_run_writes_every_measurement(tiny_run):
    out, stdout = tiny_run
    doc = json.loads((out / "bench.json").read_text())
    m = doc["machine"]
    for key in ("hostname", "date", "cpu_model", "cores", "pi_model", "governor", "python", "numpy",
                "runtimes", "before", "after", "plan"):
        assert key in m, key
    assert "tflite-runtime" in m["runtimes"] and m["cores"] >= 1
    rows = doc["rows"]
    models = {(r["units"], r["dimension"]) for r in rows if r["benchmark"] == "predict"}
    assert models == {(16, 9), (64, 2)}
    for r in rows:
        if r["benchmark"] in ("predict", "invoke"):
            assert r["n"] == 20 and r["runtime"] == "tflite-runtime" and r["threads"] == 1
            assert 0 < r["q1"] <= r["median"] <= r["q3"] <= r["max"] and r["p99"] <= r["max"]
        if r["benchmark"] == "predict":
            assert r["ratio"] > 0
    kinds = {r["benchmark"] for r in rows}
    assert {"cold_start", "cold_start_rss", "cold_start_hwm"} <= kinds
    assert {"schedule_error", "input_to_output", "midi_in_to_out"} <= kinds, doc.get("notes")
    midi = {r["note"]: r for r in rows if r["benchmark"] == "midi_in_to_out"}
    # The serial and virtual MIDI paths again on SCHED_FIFO 10, as imps.service runs the box,
    # when this user may (root here in CI); otherwise a note says why not.
    may_rt = os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= 10
    rt = "midi box layered, SCHED_FIFO 10"
    if may_rt:
        assert rt in midi and "serial box layered, SCHED_FIFO 10" in {
            r["note"] for r in rows if r["benchmark"] == "input_to_output"}, doc.get("notes")
        midi.pop(rt)
    else:
        assert "LimitRTPRIO" in doc["notes"]["realtime"]
    assert set(midi) == {"midi box layered", "midi din box layered"}
    assert all(r["n"] >= 25 and 0 < r["median"] <= r["p99"] for r in midi.values())
    assert {r["note"] for r in rows if r["benchmark"] == "midi_in_to_echo"} == set(midi)
    assert "midi_in_to_out" in stdout
    hwm = next(r for r in rows if r["benchmark"] == "cold_start_hwm")
    assert hwm["unit"] == "MB" and 5 < hwm["median"] < 2000
    assert "predict/invoke" in stdout and "wrote" in stdout


def test_missing_models_give_one_clear_error(tmp_path, device_python):
    r = subprocess.run([device_python, "-m", "imps", "bench", "--models", str(tmp_path), "--no-e2e",
                        "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "benchmark models missing" in r.stderr and "make bench-models" in r.stderr
    assert "Traceback" not in r.stderr


# -- the figures ---------------------------------------------------------------------------

def test_plot_bench_writes_both_figures_and_overlays(tmp_path):
    from imps_train.plot_bench import DIMENSION_PNG, UNITS_PNG, plot_bench, series
    a = fixture_results(tmp_path / "a", "laptop")
    b = fixture_results(tmp_path / "b", "box", pi_model="Raspberry Pi 4 Model B Rev 1.4")
    written = plot_bench([a, tmp_path / "b"], tmp_path / "figs")
    assert [p.name for p in written] == [UNITS_PNG, DIMENSION_PNG]
    for p in written:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000
    lines = series(json.loads(b.read_text()), "units", "dimension", 9)
    assert [x for x, *_ in lines[("tflite-runtime", "predict")]] == list(bench.UNITS_SWEEP)
    from imps_train.cli import main
    assert main(["plot-bench", str(a), "--no-paper"]) == 0     # the command, beside its result
    assert (a.parent / UNITS_PNG).exists() and (a.parent / DIMENSION_PNG).exists()


def test_plot_bench_rejects_other_json(tmp_path):
    from imps_train.plot_bench import load_results
    (tmp_path / "bench.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not an `imps bench` result"):
        load_results(tmp_path)


# -- make bench HOST= over the loopback sshd of the deploy tests -----------------------------

from test_deploy import sshd  # noqa: E402,F401  (the module-scoped loopback sshd fixture)


def make_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "HOST")}
    env.update(extra)
    return env


def test_make_bench_on_a_host_fetches_results_and_plots(sshd, tmp_path):  # noqa: F811
    # A deployed box: <prefix>/current/bin/imps is a stand-in that writes a fixture result.
    root = sshd.home / "benchbox"
    prefix = root / "opt-imps"
    bindir = prefix / "releases" / "r1" / "bin"
    bindir.mkdir(parents=True)
    (prefix / "current").symlink_to(prefix / "releases" / "r1")
    fixture_results(root / "fixture", "fixture-box")
    calls = root / "imps.calls"
    (bindir / "imps").write_text(textwrap.dedent(f"""\
        #!/bin/bash
        # Stand-in for the box's imps: records its arguments, writes a fixture result to -o DIR.
        echo "$*" >> {calls}
        out=
        while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
        [ -n "$out" ] || exit 2
        mkdir -p "$out" && cp {root}/fixture/bench.json {root}/fixture/bench.csv "$out/"
        """))
    (bindir / "imps").chmod(0o755)
    sshd.chown(root)

    results = tmp_path / "results"
    r = subprocess.run(["make", "-s", "-C", str(REPO), *MAKE_NO_SETUP, "bench", f"HOST={sshd.host}",
                        f"BENCH_DIR={results}", "BENCH_ARGS=--full --iterations 7"],
                       capture_output=True, text=True, timeout=180,
                       env=make_env(IMPS_SSH_OPTS=sshd.ssh_opts, IMPS_PREFIX=str(prefix)))
    assert r.returncode == 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    [box_dir] = list(results.iterdir())
    assert box_dir.name.startswith(os.uname().nodename + "-")          # the box's hostname and date
    assert (box_dir / "bench.json").read_text() == (root / "fixture" / "bench.json").read_text()
    assert (box_dir / "bench.csv").exists()
    assert (box_dir / "prediction-vs-units.png").exists() and (box_dir / "prediction-vs-dimension.png").exists()
    [call] = calls.read_text().splitlines()
    assert call.startswith("bench --full --iterations 7 -o /tmp/imps-bench.")
    remote_dir = call.split(" -o ")[1]
    assert not os.path.exists(remote_dir), "the box's temporary result directory is removed"
    assert f"results of {sshd.host} in {box_dir}" in r.stdout


def test_make_bench_on_a_box_without_a_deploy_says_so(sshd, tmp_path):  # noqa: F811
    r = subprocess.run(["make", "-s", "-C", str(REPO), *MAKE_NO_SETUP, "bench", f"HOST={sshd.host}",
                        f"BENCH_DIR={tmp_path}"], capture_output=True, text=True, timeout=60,
                       env=make_env(IMPS_SSH_OPTS=sshd.ssh_opts, IMPS_PREFIX=str(tmp_path / "nothing")))
    assert r.returncode != 0
    assert "no deployed box" in r.stderr and "make deploy HOST=" in r.stderr


def test_make_bench_on_an_unreachable_host_fails_fast(tmp_path):
    r = subprocess.run(["make", "-s", "-C", str(REPO), *MAKE_NO_SETUP, "bench", "HOST=pi@imps-box.invalid",
                        f"BENCH_DIR={tmp_path}"], capture_output=True, text=True, timeout=60, env=make_env())
    assert r.returncode != 0
    assert "cannot reach pi@imps-box.invalid over ssh" in r.stderr
    assert not any(tmp_path.iterdir())


# -- real-time scheduling, as imps.service runs the box ------------------------------------

FIFO_PROBE = """
import os, threading
from imps.bench.e2e import fifo
seen = []
try:
    with fifo(10):
        t = threading.Thread(target=lambda: seen.append((os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)))
        t.start(); t.join()
except PermissionError as exc:
    print("refused", exc)
else:
    print("thread", seen[0] == (os.SCHED_FIFO, 10), "after", os.sched_getscheduler(0) == os.SCHED_OTHER)
"""


def test_fifo_puts_the_threads_it_starts_on_sched_fifo_or_is_refused(device_python):
    """What `imps bench --realtime` measures: threads started inside ``fifo`` run on SCHED_FIFO
    (root here); without CAP_SYS_NICE and with RLIMIT_RTPRIO 0 the kernel refuses, and the
    bench reports that instead of failing."""
    if os.geteuid() == 0:
        r = subprocess.run([device_python, "-c", FIFO_PROBE], capture_output=True, text=True, timeout=120)
        assert r.stdout.strip() == "thread True after True", r.stdout + r.stderr
        drop = ["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice"]
    else:
        drop = []
    r = subprocess.run(["prlimit", "--rtprio=0", *drop, device_python, "-c", FIFO_PROBE],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith("refused"), r.stdout + r.stderr
    with pytest.raises(ValueError, match="out of range, expected 1 to 49"):
        from imps.bench.e2e import fifo
        with fifo(99):
            pass
