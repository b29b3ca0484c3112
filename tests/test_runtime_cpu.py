"""The TFLite runtimes need /proc/cpuinfo for their fast (XNNPACK) kernels.

systemd's ProcSubset=pid hides it. Under it both runtimes print "Error in cpuinfo"
and run without XNNPACK, 2 to 6 times slower per step, so imps.service does not set
it (tests/test_units.py) and the box says so in words if it ever runs that way.
Here the hiding is real: a child in its own user, mount and pid namespaces with
/proc mounted as `subset=pid`, exactly what systemd mounts for the unit.
"""
from __future__ import annotations

import logging
import subprocess

import pytest

XNNPACK = "Created TensorFlow Lite XNNPACK delegate"
CPUINFO_ERROR = "Error in cpuinfo"
OUR_WARNING = "cannot read /proc/cpuinfo"

# Load the bundled model the box's way and step it, with the box's logging on stderr.
CHILD = """
import logging, sys
logging.basicConfig(level=logging.INFO)
from imps.box.config import DEFAULT_MODEL
from imps.model.runtime import open_interpreter
interp, name = open_interpreter(DEFAULT_MODEL, runtime=sys.argv[1])
for _ in range(3):
    interp.invoke()
print("loaded with", name)
"""

HIDE_CPUINFO = ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "sh", "-c",
                'mount -t proc -o subset=pid proc /proc && test ! -e /proc/cpuinfo && exec "$@"', "sh"]


def _load(device_python, runtime, hidden):
    cmd = [device_python, "-c", CHILD, runtime]
    if hidden:
        probe = subprocess.run(HIDE_CPUINFO + ["true"], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.skip(f"this kernel gives no user namespace to mount /proc in: {probe.stderr.strip()}")
        cmd = HIDE_CPUINFO + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and f"loaded with {runtime}" in r.stdout, r.stderr[-2000:]
    return r.stderr


@pytest.mark.parametrize("runtime", ["tflite-runtime", "ai-edge-litert"])
def test_runtime_uses_xnnpack_when_it_can_see_the_cpu(device_python, runtime):
    err = _load(device_python, runtime, hidden=False)
    assert XNNPACK in err and CPUINFO_ERROR not in err and OUR_WARNING not in err, err[-2000:]


@pytest.mark.parametrize("runtime", ["tflite-runtime", "ai-edge-litert"])
def test_hidden_cpuinfo_loses_xnnpack_and_the_box_says_so(device_python, runtime):
    err = _load(device_python, runtime, hidden=True)
    assert CPUINFO_ERROR in err and XNNPACK not in err, err[-2000:]
    assert OUR_WARNING in err and "slower per step" in err, err[-2000:]


def test_the_warning_comes_once(monkeypatch, tmp_path, caplog):
    from imps.model import runtime
    monkeypatch.setattr(runtime, "CPUINFO", tmp_path / "no-cpuinfo")
    monkeypatch.setattr(runtime, "_cpuinfo_warned", False)
    with caplog.at_level(logging.WARNING, logger=runtime.log.name):
        assert runtime.warn_if_cpu_hidden() and runtime.warn_if_cpu_hidden()
    assert [r.getMessage() for r in caplog.records].count(
        f"cannot read {tmp_path / 'no-cpuinfo'} (a ProcSubset=pid unit?): the model runs without XNNPACK, "
        "2 to 6 times slower per step") == 1
    (tmp_path / "no-cpuinfo").write_text("processor\t: 0\n")
    monkeypatch.setattr(runtime, "_cpuinfo_warned", False)
    assert not runtime.warn_if_cpu_hidden()
