"""The box's parts (box/parts.py): one list, one face, one place to add a new kind."""
import threading

from imps.box.app import Box
from imps.box.config import load_config
from imps.box.parts import GpioPart, OscPart, Part, SerialPart
from imps.errors import DeviceError
from imps.threads import start_thread
from support import box_overrides, wait_until


class Recorder(Part):
    """A new kind of part, added in one place: it records what the box did with it."""

    name = "recorder"

    def __init__(self, fail: bool = False):
        self.calls = []
        self.fail = fail
        self.stop_event = threading.Event()
        self.thread = None
        self.threads = (("recorder thread", lambda: self.thread),)

    def start(self):
        self.calls.append("start")
        if self.fail:
            raise DeviceError("no recorder plugged in")
        self.thread = start_thread(self.stop_event.wait, "recorder")

    def stop(self):
        self.calls.append("stop")
        self.stop_event.set()

    def summary(self):
        return "recorder ok"

    def describe(self):
        return "recorder on"


def test_a_new_part_is_started_supervised_shown_and_stopped_from_one_list(tmp_path, sound):
    box = Box(load_config(None, box_overrides(tmp_path, sound.port)))
    part = Recorder()
    box.add_part(part)
    box.start()
    try:
        assert part.calls == ["start"]
        assert "recorder thread" in box.supervisor.labels()
        assert "recorder ok" in box.status_line()
        assert box.describe().endswith("; recorder on")
        part.stop_event.set()                          # its thread ends while the box plays
        wait_until(lambda: not part.thread.is_alive(), what="the part's thread to end")
        assert not box.supervisor.healthy() and "recorder thread (recorder)" in box.status_line()
    finally:
        box.stop()
    assert part.calls == ["start", "stop"]


def test_an_optional_part_that_cannot_start_leaves_the_box_playing(tmp_path, sound, caplog):
    box = Box(load_config(None, box_overrides(tmp_path, sound.port)))
    box.add_part(Recorder(fail=True))
    box.start()
    try:
        assert box.ready_at is not None
        assert "recorder: no recorder plugged in; playing on without it" in caplog.text
    finally:
        box.stop()


def test_the_config_decides_the_parts_in_start_order(tmp_path, sound, pty_pair):
    _, slave = pty_pair
    box = Box(load_config(None, box_overrides(tmp_path, sound.port, gpio={"backend": "mock"},
                                              serial={"enabled": True, "port": slave},
                                              panel={"enabled": True, "shutdown_command": ["true"]})))
    assert [type(p) for p in box.parts] == [OscPart, SerialPart, GpioPart]
    box.start()
    try:
        said = box.describe()
        assert all(p.describe() in said for p in box.parts)
        assert box.receiver("control").port != box.receiver("interface").port
        assert box.gpio is not None and box.panel is not None and box.serial is not None
    finally:
        box.stop()
    assert box.gpio is None, "the GPIO pins are released on stop"
