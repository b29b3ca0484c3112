"""The box as a systemd service, through a real notify socket and real signals."""
import os
import signal
import threading
import time


from imps.box.app import Box
from imps.box.config import load_config
from imps.io.notify import Notifier
from notify_socket import NotifySocket
from support import ImpsRun


def test_ready_status_and_watchdog_from_the_prediction_loop(tmp_path, tiny_model, sound):
    with NotifySocket(watchdog_usec=200_000) as sd:  # ping every 0.1 s
        config = load_config(None, {"model": {"path": str(tiny_model), "runtime": "ai-edge-litert"},
                                    "engine": {"mode": "layered"},
                                    "osc": {"interface_port": 0, "control_port": 0, "sound_port": sound.port},
                                    "log": {"directory": str(tmp_path)}})
        box = Box(config, Notifier(env=sd.env(os.environ))).start()
        try:
            ready = sd.wait_for("READY")
            assert "mode layered" in ready.fields["STATUS"]
            sd.wait_for("WATCHDOG", count=5, timeout=5)
            # Hang the prediction loop itself: the pings must stop.
            release = threading.Event()
            box.engine.submit(lambda: release.wait(10))
            time.sleep(0.3)
            hung_at = time.monotonic()
            time.sleep(1.0)
            during = [t for t in sd.times("WATCHDOG") if t > hung_at]
            assert during == [], f"{len(during)} watchdog pings while the loop was hung"
            release.set()
            deadline = time.monotonic() + 3
            while not [t for t in sd.times("WATCHDOG") if t > hung_at] and time.monotonic() < deadline:
                time.sleep(0.02)
            assert [t for t in sd.times("WATCHDOG") if t > hung_at], "pings did not resume"
        finally:
            box.stop()
        assert sd.wait_for("STOPPING")


def run_box(tmp_path, config_text, sd, python) -> ImpsRun:
    config = tmp_path / "box.toml"
    config.write_text(config_text)
    return ImpsRun(python, "--config", config, "-q", sd=sd)


def test_sighup_refuses_a_bad_model_and_sigterm_stops_cleanly(tmp_path, tiny_model, device_python, sound):
    model = tmp_path / "model.tflite"
    model.write_bytes(tiny_model.read_bytes())
    model.with_suffix(".json").write_text(tiny_model.with_suffix(".json").read_text())
    text = (f'[model]\npath = "{model}"\n[engine]\nmode = "duet"\n'
            f'[osc]\nsound_port = {sound.port}\n'
            f'[log]\ndirectory = "{tmp_path / "logs"}"\n')
    with NotifySocket(watchdog_usec=1_000_000) as sd:
        with run_box(tmp_path, text, sd, device_python) as box:
            box.wait_for("READY", timeout=20)
            sound.wait_for("/model", 5, timeout=10)
            # A broken model arrives and the box is told to reload: it refuses and plays on.
            bad = tmp_path / "broken.tflite"
            bad.write_bytes(model.read_bytes()[:3000])
            (tmp_path / "box.toml").write_text(text.replace(str(model), str(bad)))
            box.proc.send_signal(signal.SIGHUP)
            box.wait_for("RELOADING", timeout=10)
            box.wait_for("READY", count=2, timeout=10)
            since = time.monotonic()
            sound.wait_for("/model", 5, timeout=10, since=since)
            box.wait_for("WATCHDOG", count=2, timeout=10)
            assert box.stop(timeout=20) == 0, box.stderr
        err = box.stderr
        assert "reload refused" in err and "broken.tflite" in err
        assert sd.wait_for("STOPPING")
    assert sound.of("/silence"), "SIGTERM must silence the sound engine"
    logs = list((tmp_path / "logs").glob("*-4d-mdrnn.log"))
    assert len(logs) == 1
    lines = logs[0].read_text().splitlines()
    assert len(lines) >= 10 and all(line.count(",") == 4 for line in lines)
    assert lines[-1].split(",")[1] in ("rnn", "interface")


def test_sighup_takes_a_good_new_model(tmp_path, tiny_model, other_tool_model, device_python, sound):
    text = (f'[model]\npath = "{tiny_model}"\n[engine]\nmode = "user"\n'
            f'[osc]\nsound_port = {sound.port}\n'
            f'[log]\nenabled = false\n')
    with NotifySocket() as sd, run_box(tmp_path, text, sd, device_python) as box:
        box.wait_for("READY", timeout=20)
        (tmp_path / "box.toml").write_text(text.replace(str(tiny_model), str(other_tool_model))
                                           .replace('"user"', '"duet"'))
        box.proc.send_signal(signal.SIGHUP)
        box.wait_for("READY", count=2, timeout=10)
        sound.wait_for("/model", 3, timeout=10)
        assert box.stop(timeout=20) == 0, box.stderr
    assert f"with model {other_tool_model}" in box.stderr


