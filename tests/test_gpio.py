"""The GPIO seam: fake backend, RPi.GPIO backend selection, buttons, LEDs, pads, keyboard."""
import subprocess
import sys
import time
import types

import pytest

from imps.panel.buttons import (
    ERROR_PATTERNS, NO_MODEL, NO_SENSOR_BOARD, SHUTDOWN_FAILED, Debouncer, DigitalInputs, Panel, PanelConfig, led_levels,
)
from imps.errors import ConfigError, DeviceError
from imps.panel.gpio import get_backend
from imps.panel.gpio.fake import FakeBackend
from imps.sim.keys import KeyboardPanel, render_leds
from imps.modes import Mode


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class FakeController:
    def __init__(self):
        self.mode = Mode.USER
        self.resets = 0

    def cycle_mode(self):
        self.mode = self.mode.next()

    def reset_state(self):
        self.resets += 1


CFG = PanelConfig(mode_button=17, shutdown_button=27, mode_leds=(5, 6, 13, 19),
                  debounce=0.03, long_press=1.0, shutdown_hold=3.0, shutdown_command=("echo", "bye"))


@pytest.fixture
def rig():
    clock = Clock()
    gpio = FakeBackend(clock=clock)
    ctl = FakeController()
    commands = []
    panel = Panel(gpio, ctl, CFG, clock=clock,
                  run_command=lambda cmd: commands.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    panel.setup()

    def hold(pin, seconds, step=0.005):
        """Press pin, poll through `seconds` in small steps, release, poll past the debounce."""
        gpio.press(pin)
        end = clock.t + seconds
        while clock.t < end:
            clock.t += step
            panel.poll()
        gpio.release(pin)
        for _ in range(20):
            clock.t += step
            panel.poll()
    return types.SimpleNamespace(clock=clock, gpio=gpio, ctl=ctl, panel=panel, commands=commands, hold=hold)


def leds(rig):
    return tuple(rig.gpio.state(p) for p in CFG.mode_leds)


def test_short_presses_cycle_modes_and_leds_follow(rig):
    assert leds(rig) == (True, False, False, False)
    expected = [Mode.CALL_RESPONSE, Mode.LAYERED, Mode.DUET, Mode.USER]
    for i, mode in enumerate(expected):
        rig.hold(17, 0.2)
        assert rig.ctl.mode == mode
        assert leds(rig) == tuple(j == list(Mode).index(mode) for j in range(4))
    assert rig.ctl.resets == 0 and rig.panel.status()["mode_presses"] == 4


def test_long_press_resets_state_once_without_changing_mode(rig):
    rig.gpio.press(17)
    for _ in range(int(0.99 / 0.005)):
        rig.clock.t += 0.005
        rig.panel.poll()
    assert rig.ctl.resets == 0                     # not yet: under long_press + debounce
    rig.hold(17, 2.0)                              # already pressed: keep holding, then release
    assert rig.ctl.resets == 1 and rig.ctl.mode == Mode.USER
    assert leds(rig) == (True, False, False, False)


def test_reset_flashes_all_leds_briefly(rig):
    rig.gpio.press(17)
    t0 = rig.clock.t
    while rig.ctl.resets == 0:
        rig.clock.t += 0.005
        rig.panel.poll()
    assert leds(rig) == (True,) * 4
    rig.clock.t += 0.35
    rig.panel.poll()
    assert leds(rig) == (True, False, False, False)
    assert rig.clock.t - t0 > 1.0


def test_bounces_shorter_than_debounce_do_nothing(rig):
    for _ in range(10):          # contact bounce: 10 ms down, 10 ms up, never stable for 30 ms
        rig.gpio.press(17)
        for _ in range(2):
            rig.clock.t += 0.005
            rig.panel.poll()
        rig.gpio.release(17)
        for _ in range(2):
            rig.clock.t += 0.005
            rig.panel.poll()
    assert rig.ctl.mode == Mode.USER
    rig.hold(17, 0.1)            # a bouncy press that then settles counts once
    assert rig.ctl.mode == Mode.CALL_RESPONSE


def test_shutdown_needs_a_long_hold_and_runs_once(rig):
    rig.hold(27, 1.5)
    assert rig.commands == []
    rig.hold(27, 5.0)
    assert rig.commands == [["echo", "bye"]]
    assert rig.panel.shutting_down and leds(rig) == (True,) * 4
    rig.hold(27, 5.0)
    assert len(rig.commands) == 1


def hold_shutdown(panel, gpio, clock, seconds=3.5):
    gpio.press(27)
    end = clock.t + seconds
    while clock.t < end:
        clock.t += 0.005
        panel.poll()
    gpio.release(27)
    for _ in range(20):
        clock.t += 0.005
        panel.poll()


@pytest.mark.parametrize("command, why", [
    # A real command that fails the way `systemctl poweroff` does without permission.
    (("sh", "-c", "echo 'Call to PowerOff failed: Access denied' >&2; exit 1"), "exit status 1: Call to PowerOff failed: Access denied"),
    (("/nonexistent/systemctl", "poweroff"), "No such file"),
])
def test_a_failed_shutdown_command_is_logged_and_blinks_all_leds(caplog, command, why):
    clock = Clock()
    gpio = FakeBackend(clock=clock)
    cfg = PanelConfig(mode_button=17, shutdown_button=27, mode_leds=(5, 6, 13, 19), shutdown_command=command)
    panel = Panel(gpio, FakeController(), cfg, clock=clock)      # the real runner: subprocess.run
    panel.setup()
    hold_shutdown(panel, gpio, clock)
    st = panel.status()
    assert st["shutdowns"] == 1 and st["errors"] == 1
    assert not panel.shutting_down, "the LEDs must not say 'shutting down' when nothing happens"
    assert why in panel.shutdown_failed and why in caplog.text and "polkit" in caplog.text
    # All four LEDs blink together, fast: on, then off 0.1 s later, then on again.
    seen = set()
    for _ in range(8):
        clock.t += 0.05
        panel.poll()
        seen.add(tuple(gpio.state(p) for p in (5, 6, 13, 19)))
    assert seen == {(True,) * 4, (False,) * 4}
    # Holding the button again tries again (and succeeds here).
    panel.config.shutdown_command = ("true",)
    hold_shutdown(panel, gpio, clock)
    assert panel.shutting_down and panel.shutdown_failed is None


def test_error_patterns_blink_the_mode_led_as_documented(rig):
    rig.hold(17, 0.1)    # call-and-response: LED 1
    rig.panel.show_error(NO_MODEL)
    t0 = rig.clock.t
    seen = []
    for ms in (100, 400, 600, 900, 1100):
        rig.clock.t = t0 + ms / 1000
        rig.panel.poll()
        seen.append(leds(rig))
    on, off = (False, True, False, False), (False,) * 4
    assert seen == [on, on, off, off, on]
    rig.panel.show_error(NO_SENSOR_BOARD)
    t0 = rig.clock.t
    seen = []
    for ms in (50, 150, 250, 500, 1050):
        rig.clock.t = t0 + ms / 1000
        rig.panel.poll()
        seen.append(leds(rig)[1])
    assert seen == [True, False, True, False, True]
    rig.panel.show_error(None)
    assert leds(rig) == on
    with pytest.raises(ConfigError, match="unknown panel error"):
        rig.panel.show_error("on_fire")


def test_show_mode_from_outside_updates_leds_at_once(rig):
    rig.panel.show_mode(Mode.DUET)
    assert leds(rig) == (False, False, False, True)
    assert [lvl for _, lvl in rig.gpio.history(19)] == [False, True]


def test_led_levels_pure():
    assert led_levels(Mode.LAYERED, None, 0.0) == (False, False, True, False)
    assert led_levels(Mode.USER, NO_MODEL, 0.75) == (False,) * 4
    assert set(ERROR_PATTERNS) == {NO_MODEL, NO_SENSOR_BOARD, SHUTDOWN_FAILED}
    for pattern in ERROR_PATTERNS.values():
        assert sum(d for d, _ in pattern) == pytest.approx(1.0)


def test_debouncer_events():
    d = Debouncer(debounce=0.02, long_press=0.5)
    assert d.update(True, 0.0) == []
    assert d.update(True, 0.02) == ["press"]
    assert d.update(True, 0.52) == ["long"]
    assert d.update(True, 0.6) == []
    assert d.update(False, 0.7) == []
    assert d.update(False, 0.72) == ["release"]    # no "short" after a long
    assert d.update(True, 1.0) == [] and d.update(True, 1.03) == ["press"]
    assert d.update(False, 1.1) == [] and d.update(False, 1.2) == ["release", "short"]


def test_panel_thread_runs_with_real_time_and_stops():
    gpio = FakeBackend()
    ctl = FakeController()
    panel = Panel(gpio, ctl, CFG, run_command=lambda c: None)
    panel.start()
    try:
        gpio.press(17)
        time.sleep(0.2)
        gpio.release(17)
        deadline = time.monotonic() + 3
        while ctl.mode == Mode.USER and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ctl.mode == Mode.CALL_RESPONSE
    finally:
        panel.stop()
    assert not any(gpio.state(p) for p in CFG.mode_leds)   # LEDs dark after stop


def test_digital_inputs_emit_debounced_zero_one_on_their_controls():
    clock = Clock()
    gpio = FakeBackend(clock=clock)
    got = []
    pads = DigitalInputs(gpio, pins=[22, 23], controls=[4, 5], debounce=0.01, clock=clock)
    pads.setup(lambda v, c: got.append((v, c)))
    gpio.press(23)
    for _ in range(5):
        clock.t += 0.005
        pads.poll()
    gpio.release(23)
    gpio.press(22)
    gpio.release(22)       # a 0 ms glitch on pad 22: ignored
    for _ in range(5):
        clock.t += 0.005
        pads.poll()
    assert got == [([1.0], [5]), ([0.0], [5])]
    assert pads.status()["gpio_events"] == 2


def test_config_validation():
    with pytest.raises(ConfigError, match="one BCM pin per mode"):
        PanelConfig(mode_leds=(5, 6))
    with pytest.raises(ConfigError, match="must all differ"):
        PanelConfig(mode_button=5)
    with pytest.raises(ConfigError, match="unknown gpio panel settings"):
        PanelConfig.from_dict({"mode_buton": 4})
    with pytest.raises(ConfigError, match="one control index per pin"):
        DigitalInputs(FakeBackend(), [22], [1, 2])


def test_fake_backend_pin_bookkeeping():
    gpio = FakeBackend()
    gpio.setup_output(5)
    with pytest.raises(DeviceError, match="GPIO5 is already in use as an output"):
        gpio.setup_input(5)
    with pytest.raises(DeviceError, match="GPIO6 is not set up"):
        gpio.read(6)
    with pytest.raises(ConfigError, match="BCM pin"):
        gpio.setup_input(40)
    gpio.setup_input(7, pull_up=True)
    edges = []
    gpio.add_edge_callback(7, lambda pin, level: edges.append((pin, level)))
    gpio.press(7)
    gpio.release(7)
    assert edges == [(7, False), (7, True)]


def test_backend_selection_is_explicit(monkeypatch):
    monkeypatch.setenv("IMPS_GPIO", "fake")
    assert get_backend().name == "fake"
    assert get_backend("fake").name == "fake"
    with pytest.raises(ConfigError, match="unknown GPIO backend 'wiringpi'"):
        get_backend("wiringpi")


def _fake_rpi_module(monkeypatch, module):
    pkg = types.ModuleType("RPi")
    pkg.GPIO = module
    monkeypatch.setitem(sys.modules, "RPi", pkg)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", module)


def test_rpigpio_off_a_pi_is_a_clear_device_error(monkeypatch):
    monkeypatch.delenv("IMPS_GPIO", raising=False)
    # importing RPi.GPIO off a Pi raises RuntimeError at import time; emulate with a finder
    import importlib.abc

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name in ("RPi", "RPi.GPIO"):
                raise RuntimeError("This module can only be run on a Raspberry Pi!")
            return None
    monkeypatch.delitem(sys.modules, "RPi", raising=False)
    monkeypatch.delitem(sys.modules, "RPi.GPIO", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder()] + sys.meta_path)
    with pytest.raises(DeviceError, match="only be run on a Raspberry Pi.*IMPS_GPIO=fake"):
        get_backend()
    with pytest.raises(OSError):          # DeviceError is also an OSError
        get_backend("rpigpio")


def test_rpigpio_backend_drives_the_rpi_gpio_api(monkeypatch):
    calls = []

    class GPIO(types.ModuleType):
        BCM, IN, OUT, HIGH, LOW, PUD_UP, PUD_DOWN, PUD_OFF, BOTH = "BCM", "IN", "OUT", 1, 0, "UP", "DOWN", "OFF", "BOTH"

        def __getattr__(self, name):
            def fn(*a, **kw):
                calls.append((name, a, kw))
                return 0 if name == "input" else None
            return fn
    _fake_rpi_module(monkeypatch, GPIO("RPi.GPIO"))
    gpio = get_backend("rpigpio")
    gpio.setup_input(17, pull_up=True)
    gpio.setup_output(5, initial=False)
    gpio.write(5, True)
    assert gpio.read(17) is False
    gpio.close()
    names = [(n, a) for n, a, _ in calls]
    assert ("setmode", ("BCM",)) in names
    assert ("setup", (17, "IN")) in names and ("setup", (5, "OUT")) in names
    assert ("output", (5, 1)) in names and ("cleanup", ([17, 5],)) in names
    assert dict(calls[[n for n, _, _ in calls].index("setup")][2]) == {"pull_up_down": "UP"}


def test_keyboard_drives_the_panel_and_renders_leds():
    gpio = FakeBackend()
    ctl = FakeController()
    commands = []
    panel = Panel(gpio, ctl, CFG, run_command=commands.append)
    keys = KeyboardPanel(gpio, CFG, pads=[22])
    panel.start()
    pads_seen = []
    pads = DigitalInputs(gpio, [22], [3])
    pads.start(lambda v, c: pads_seen.append(v[0]))
    try:
        assert render_leds(gpio, CFG.mode_leds) == "[U---]"
        assert keys.handle_key("m") == "mode button: next mode"
        deadline = time.monotonic() + 3
        while ctl.mode == Mode.USER and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ctl.mode == Mode.CALL_RESPONSE
        time.sleep(0.05)
        assert render_leds(gpio, CFG.mode_leds) == "[-C--]"
        assert keys.handle_key("1") == "pad 1 down"
        deadline = time.monotonic() + 3
        while pads_seen != [1.0] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert keys.handle_key("1") == "pad 1 up"
        while pads_seen != [1.0, 0.0] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pads_seen == [1.0, 0.0]
        keys.handle_key("r")
        deadline = time.monotonic() + 4
        while ctl.resets == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ctl.resets == 1
        assert keys.handle_key("q") == "quit" and keys.handle_key("x") is None
    finally:
        keys.close()
        pads.stop()
        panel.stop()
    assert commands == []


def test_fake_gpio_driven_from_outside_through_its_control_pipe(tmp_path, monkeypatch, caplog):
    path = tmp_path / "gpio"
    monkeypatch.setenv("IMPS_FAKE_GPIO_CONTROL", str(path))
    gpio = get_backend("fake")
    try:
        gpio.setup_input(27, pull_up=True)
        gpio.setup_input(22, pull_up=False)
        with open(path, "w") as pipe:     # another process, as a test over ssh would
            pipe.write("press 27\ndrive 22 1\nwiggle 3\npress 99\n")
        deadline = time.monotonic() + 10
        while gpio.control.commands + gpio.control.bad < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gpio.read(27) is False and gpio.read(22) is True     # held low against its pull-up
        assert (gpio.control.commands, gpio.control.bad) == (2, 2)
        assert "skipped 'wiggle 3'" in caplog.text and "skipped 'press 99'" in caplog.text
        with open(path, "w") as pipe:
            pipe.write("release 27\n")
        while gpio.read(27) is False and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gpio.read(27) is True
    finally:
        gpio.close()
    assert gpio.control is None


def test_fake_gpio_control_must_be_a_pipe(tmp_path, monkeypatch):
    (tmp_path / "gpio").write_text("not a pipe")
    monkeypatch.setenv("IMPS_FAKE_GPIO_CONTROL", str(tmp_path / "gpio"))
    with pytest.raises(DeviceError, match="is not a FIFO"):
        get_backend("fake")
