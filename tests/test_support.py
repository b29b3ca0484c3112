"""The suite's own helper for tests that start a box (support.ImpsRun)."""
import socket
import time

import pytest

from notify_socket import NotifySocket
from support import ImpsRun


def test_a_wait_on_a_box_that_exited_fails_at_once_with_its_stderr(device_python):
    """A port someone holds (a developer's box on the defaults): the child exits with one line,
    and the wait says so at once, with that line, instead of timing out a minute later."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        start = time.monotonic()
        with NotifySocket() as sd, ImpsRun(device_python, "-q", "--no-log", sd=sd,
                                           control_port=port) as box:
            with pytest.raises(AssertionError) as failed:
                box.wait_for("READY", timeout=120)
    assert time.monotonic() - start < 60, "the wait sat out its timeout"
    assert "exited with 2" in str(failed.value)
    assert str(port) in str(failed.value) and "imps: error:" in str(failed.value)


def test_the_box_takes_free_ports_whatever_its_config_says(tmp_path, device_python):
    """A config on the default ports still starts beside a box that holds them."""
    config = tmp_path / "box.toml"
    config.write_text("[osc]\ninterface_port = 5000\ncontrol_port = 5002\n[log]\nenabled = false\n")
    with NotifySocket() as sd, ImpsRun(device_python, "--config", config, "-q", sd=sd) as box:
        ready = box.wait_for("READY", timeout=60)
        assert box.stop() == 0, box.stderr
    assert "mode" in ready.fields["STATUS"]
    said = [line for line in box.stderr.splitlines() if " ready " in line][0]
    assert "OSC in :5000 " not in said and "control :5002 " not in said, said
