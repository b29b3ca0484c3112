"""The front panel on gpiozero: buttons, LEDs, pads, the pin factory per platform, the FIFO.

Behaviour tests run on gpiozero's MockFactory in real time: a press is a MockPin
driven low (``imps.panel.mock.press``), the LEDs are read back from the output
pins and their timestamped ``states``. Nothing waits a fixed time for a result:
conditions are waited for (support.wait_for). The only sleeps are a finger
holding a button, and they are far from every threshold they must stay under.
"""
import subprocess
import sys
import time
import types

import pytest
from gpiozero.pins.mock import MockFactory

from imps.errors import ConfigError, DeviceError
from imps.modes import Mode
from imps.panel import mock
from imps.panel.inputs import Pads, SettledButton
from imps.panel.panel import Panel
from imps.panel.patterns import (
    ERROR_PATTERNS, NO_MODEL, NO_SENSOR_BOARD, SHUTDOWN_FAILED, STEP, all_frames, frames, led_levels,
)
from imps.panel.pins import BACKENDS, FACTORIES, Platform, choose, open_pins
from imps.panel.settings import PanelConfig
from imps.settings import decode
from pi_gpio_libs import Chip, fake_lgpio, fake_rpi_gpio
from support import wait_for, wait_until

LEDS = (5, 6, 13, 19)
MODE, SHUTDOWN = 17, 27
CFG = PanelConfig(mode_button=MODE, shutdown_button=SHUTDOWN, mode_leds=LEDS,
                  debounce=0.03, long_press=0.5, shutdown_hold=0.8, shutdown_command=("/bin/echo", "bye"))
PI4 = Platform("Raspberry Pi 4 Model B Rev 1.5", "bookworm")
PI4_TRIXIE = Platform("Raspberry Pi 4 Model B Rev 1.5", "trixie")
PI5 = Platform("Raspberry Pi 5 Model B Rev 1.0", "bookworm")
LAPTOP = Platform("", "bookworm")


class FakeController:
    def __init__(self):
        self.mode = Mode.USER
        self.resets = 0

    def cycle_mode(self):
        self.mode = self.mode.next()

    def reset_state(self):
        self.resets += 1
        self.reset_at = time.monotonic()


@pytest.fixture
def rig():
    factory = MockFactory()
    ctl = FakeController()
    commands = []
    panel = Panel(factory, ctl, CFG,
                  run_command=lambda cmd: commands.append(cmd) or subprocess.CompletedProcess(cmd, 0)).start()
    rig = types.SimpleNamespace(factory=factory, ctl=ctl, panel=panel, commands=commands)
    yield rig
    panel.stop()
    factory.close()


def leds(factory):
    return tuple(factory.pin(p).state for p in LEDS)


def lit(mode):
    return tuple(i == list(Mode).index(mode) for i in range(len(LEDS)))


def tap(factory, pin, seconds=0.15) -> float:
    """A finger on a button: press, hold, release (seconds far from debounce and long_press).
    Returns how long it was really held (a busy machine may sleep longer)."""
    mock.press(factory, pin)
    t0 = time.monotonic()
    time.sleep(seconds)
    mock.release(factory, pin)
    return time.monotonic() - t0


def hold_until(factory, pin, condition, what: str, timeout: float = 15.0) -> None:
    """A finger on a button until the box does something (condition), then off it."""
    mock.press(factory, pin)
    try:
        wait_until(condition, timeout, what=what)
    finally:
        mock.release(factory, pin)


def durations(pin, level):
    """How long each completed run of ``level`` lasted on a MockPin, from its recorded states."""
    states = pin.states
    return [nxt.timestamp for cur, nxt in zip(states, states[1:]) if cur.state == level]


# ---------------------------------------------------------------- buttons
def test_short_presses_cycle_modes_and_leds_follow(rig):
    assert leds(rig.factory) == lit(Mode.USER)
    for mode in [Mode.CALL_RESPONSE, Mode.LAYERED, Mode.DUET, Mode.USER]:
        tap(rig.factory, MODE)
        wait_until(lambda: rig.ctl.mode == mode, what=f"mode {mode}")
        wait_until(lambda: leds(rig.factory) == lit(mode), what=f"the {mode} LED")
    assert rig.ctl.resets == 0 and rig.panel.status()["mode_presses"] == 4


def test_long_press_resets_state_once_without_changing_mode(rig):
    mock.press(rig.factory, MODE)
    pressed = time.monotonic()
    wait_until(lambda: rig.ctl.resets == 1, what="the reset")
    assert rig.ctl.reset_at - pressed >= CFG.long_press, "not before long_press"
    time.sleep(0.6)                                # still held: a long press resets once
    mock.release(rig.factory, MODE)
    wait_until(lambda: leds(rig.factory) == lit(Mode.USER), what="the user LED alone")
    assert rig.ctl.resets == 1 and rig.ctl.mode == Mode.USER
    assert rig.panel.status()["mode_presses"] == 0, "the end of a long press is not a short press"


def test_reset_flashes_all_leds_briefly(rig):
    mock.press(rig.factory, MODE)
    wait_until(lambda: rig.ctl.resets == 1, what="the reset")
    assert wait_for(lambda: leds(rig.factory) == (True,) * 4), "all LEDs flash"
    mock.release(rig.factory, MODE)
    wait_until(lambda: leds(rig.factory) == lit(Mode.USER), what="back to the user LED")
    flash = durations(rig.factory.pin(LEDS[1]), True)
    assert len(flash) == 1 and flash[0] >= 0.3 - 0.02, flash     # lit RESET_FLASH (or longer on a busy machine)


def test_bounces_shorter_than_debounce_do_nothing():
    factory = MockFactory()
    ctl = FakeController()
    cfg = PanelConfig(mode_button=MODE, shutdown_button=None, mode_leds=LEDS, debounce=0.2, long_press=1.5)
    panel = Panel(factory, ctl, cfg).start()
    try:
        for _ in range(10):                    # contact bounce: edges far closer together than 0.2 s
            mock.press(factory, MODE)
            mock.release(factory, MODE)
        for _ in range(5):
            mock.press(factory, MODE)
            time.sleep(0.01)
            mock.release(factory, MODE)
            time.sleep(0.01)
        time.sleep(0.5)                        # well past the settle time: nothing counted
        assert ctl.mode == Mode.USER and panel.status()["mode_presses"] == 0
        for _ in range(5):                     # a bouncy press that then settles counts once
            mock.press(factory, MODE)
            mock.release(factory, MODE)
        mock.press(factory, MODE)
        time.sleep(0.5)
        mock.release(factory, MODE)
        wait_until(lambda: ctl.mode == Mode.CALL_RESPONSE, what="one mode change")
        time.sleep(0.5)
        assert panel.status()["mode_presses"] == 1
    finally:
        panel.stop()
        factory.close()


def test_shutdown_needs_a_long_hold_and_runs_once(rig):
    held = tap(rig.factory, SHUTDOWN, 0.25)        # under a third of shutdown_hold: nothing
    time.sleep(0.8)
    assert rig.commands == [] and held < CFG.shutdown_hold
    mock.press(rig.factory, SHUTDOWN)
    pressed = time.monotonic()
    wait_until(lambda: rig.commands == [["/bin/echo", "bye"]], what="the shutdown command")
    assert time.monotonic() - pressed >= CFG.shutdown_hold, "not before shutdown_hold"
    assert rig.panel.shutting_down
    wait_until(lambda: leds(rig.factory) == (True,) * 4, what="all LEDs on while shutting down")
    time.sleep(1.0)                                # held on: once is enough
    mock.release(rig.factory, SHUTDOWN)
    tap(rig.factory, SHUTDOWN, 1.0)
    time.sleep(0.5)
    assert len(rig.commands) == 1 and leds(rig.factory) == (True,) * 4


@pytest.mark.parametrize("command, why", [
    # A real command that fails the way `systemctl poweroff` does without permission.
    (("/bin/sh", "-c", "echo 'Call to PowerOff failed: Access denied' >&2; exit 1"),
     "exit status 1: Call to PowerOff failed: Access denied"),
    ("removed after the start", "No such file"),   # checked at start (it must exist then), gone when pressed
])
def test_a_failed_shutdown_command_is_logged_and_blinks_all_leds(caplog, tmp_path, command, why):
    factory = MockFactory()
    script = None
    if command == "removed after the start":
        script = tmp_path / "poweroff"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
        command = (str(script),)
    cfg = PanelConfig(mode_button=MODE, shutdown_button=SHUTDOWN, mode_leds=LEDS, shutdown_hold=0.6,
                      shutdown_command=command)
    if script is not None:
        script.unlink()
    panel = Panel(factory, FakeController(), cfg).start()      # the real runner: subprocess.run
    try:
        # Held until the box reacts, as a finger would: a fixed hold loses its margin over
        # shutdown_hold when gpiozero's hold thread is scheduled late on a busy machine.
        hold_until(factory, SHUTDOWN, lambda: panel.status()["errors"] == 1, "the failed shutdown")
        st = panel.status()
        assert st["shutdowns"] == 1
        assert not panel.shutting_down, "the LEDs must not say 'shutting down' when nothing happens"
        assert why in panel.shutdown_failed and why in caplog.text and "polkit" in caplog.text
        # All four LEDs blink together, fast.
        seen = set()
        wait_until(lambda: seen.add(leds(factory)) or seen == {(True,) * 4, (False,) * 4}, 10,
                   what="all four LEDs blinking together")
        blinks = durations(factory.pin(LEDS[2]), True)
        assert blinks and min(blinks) >= 0.1 - 0.02
        # Holding the button again tries again (and succeeds here).
        panel.config.shutdown_command = ("true",)
        hold_until(factory, SHUTDOWN, lambda: panel.shutting_down, "the second try")
        assert panel.shutdown_failed is None
        wait_until(lambda: leds(factory) == (True,) * 4, what="all LEDs steady on")
    finally:
        panel.stop()
        factory.close()


def test_a_controller_that_raises_is_logged_counted_and_the_buttons_work_on(rig, caplog):
    def broken():
        raise RuntimeError("engine on fire")
    rig.ctl.reset_state = broken
    mock.press(rig.factory, MODE)
    wait_until(lambda: rig.panel.status()["errors"] == 1, what="the error counted")
    mock.release(rig.factory, MODE)
    time.sleep(0.3)                                 # the finger off the button (a re-press within debounce is a glitch)
    assert "engine on fire" in caplog.text and "mode button long press raised" in caplog.text
    tap(rig.factory, MODE)                          # gpiozero's threads are alive: a short press still works
    wait_until(lambda: rig.ctl.mode == Mode.CALL_RESPONSE, what="the next mode")


# ---------------------------------------------------------------- LEDs
def test_error_patterns_blink_the_mode_led_as_documented(rig):
    tap(rig.factory, MODE)
    wait_until(lambda: leds(rig.factory) == lit(Mode.CALL_RESPONSE), what="call-and-response LED")
    pin = rig.factory.pin(LEDS[1])
    pin.clear_states()
    rig.panel.show_error(NO_MODEL)
    rig.panel.show_error(NO_MODEL)       # asked again (the status loop does): the blink is not restarted
    wait_until(lambda: len(durations(pin, True)) >= 2, what="two slow blinks")
    assert min(durations(pin, True)) >= 0.5 - 0.02 and min(durations(pin, False)) >= 0.5 - 0.02
    assert not any(leds(rig.factory)[i] for i in (0, 2, 3))
    rig.panel.show_error(NO_SENSOR_BOARD)
    pin.clear_states()
    wait_until(lambda: len(durations(pin, True)) >= 4, what="two double blinks")
    offs = durations(pin, False)
    assert min(durations(pin, True)) >= 0.1 - 0.02 and min(offs) >= 0.1 - 0.02
    assert max(offs) >= 0.7 - 0.02, f"the long gap of the double blink: {offs}"
    rig.panel.show_error(None)
    wait_until(lambda: leds(rig.factory) == lit(Mode.CALL_RESPONSE), what="steady again")
    with pytest.raises(ConfigError, match="unknown panel error"):
        rig.panel.show_error("on_fire")


def test_show_mode_from_outside_updates_leds_at_once(rig):
    rig.factory.pin(19).clear_states()
    rig.panel.show_mode(Mode.DUET)
    assert leds(rig.factory) == lit(Mode.DUET)                  # written before show_mode returns
    assert [s.state for s in rig.factory.pin(19).states] == [False, True]


def test_led_levels_and_frames_pure():
    assert led_levels(Mode.LAYERED, None, 0.0) == (False, False, True, False)
    assert led_levels(Mode.USER, NO_MODEL, 0.75) == (False,) * 4
    assert set(ERROR_PATTERNS) == {NO_MODEL, NO_SENSOR_BOARD, SHUTDOWN_FAILED}
    for pattern in ERROR_PATTERNS.values():
        assert sum(d for d, _ in pattern) == pytest.approx(1.0)
    on, off = (False, True, False, False), (False,) * 4
    assert frames(Mode.CALL_RESPONSE, None) == [on]
    assert frames(Mode.CALL_RESPONSE, NO_MODEL) == [on] * 5 + [off] * 5
    assert frames(Mode.CALL_RESPONSE, NO_SENSOR_BOARD) == [on, off, on] + [off] * 7
    assert all_frames(ERROR_PATTERNS[SHUTDOWN_FAILED], 4) == [(True,) * 4, (False,) * 4] * 5
    assert STEP == 0.1


def test_panel_stops_with_leds_dark_and_pins_free():
    factory = MockFactory()
    panel = Panel(factory, FakeController(), CFG).start()
    assert leds(factory) == lit(Mode.USER)
    panel.stop()
    assert not any(leds(factory))
    again = Panel(factory, FakeController(), CFG).start()       # the pins were given back
    again.stop()
    factory.close()


# ---------------------------------------------------------------- settled inputs
def test_settled_button_gives_gpiozero_events_once_the_level_holds():
    factory = MockFactory()
    events = []
    button = SettledButton(MODE, debounce=0.05, hold_time=0.5, pin_factory=factory)
    button.when_pressed = lambda: events.append("press")
    button.when_held = lambda: events.append("held")
    button.when_released = lambda: events.append("release")
    try:
        mock.press(factory, MODE)
        mock.release(factory, MODE)              # a 0 ms glitch: nothing
        mock.press(factory, MODE)
        wait_until(lambda: events == ["press", "held"], what="press, then held")
        mock.release(factory, MODE)
        wait_until(lambda: events == ["press", "held", "release"], what="the release")
        mock.press(factory, MODE)
        time.sleep(0.15)
        mock.release(factory, MODE)
        wait_until(lambda: events[3:] == ["press", "release"], what="a short press")
        time.sleep(0.7)
        assert events == ["press", "held", "release", "press", "release"]
    finally:
        button.close()
        factory.close()


def test_pads_emit_settled_zero_one_on_their_controls():
    factory = MockFactory()
    got = []
    pads = Pads(factory, pins=[22, 23], controls=[4, 5], debounce=0.01)
    pads.start(lambda v, c: got.append((v, c)))
    try:
        tap(factory, 23, 0.1)
        mock.press(factory, 22)
        mock.release(factory, 22)                 # a 0 ms glitch on pad 22: ignored
        wait_until(lambda: got == [([1.0], [5]), ([0.0], [5])], what="pad 23 down and up")
        time.sleep(0.2)
        assert got == [([1.0], [5]), ([0.0], [5])] and pads.status()["gpio_events"] == 2
    finally:
        pads.stop()
        factory.close()


def test_pads_that_raise_are_counted_and_keep_working(caplog):
    factory = MockFactory()
    calls = []

    def emit(values, controls):
        calls.append(values[0])
        if len(calls) == 1:
            raise ValueError("engine refused")
    pads = Pads(factory, pins=[22], controls=[0])
    pads.start(emit)
    try:
        tap(factory, 22, 0.1)
        wait_until(lambda: calls == [1.0, 0.0], what="both edges despite the first raising")
        assert pads.status()["gpio_callback_errors"] == 1 and "engine refused" in caplog.text
    finally:
        pads.stop()
        factory.close()


def test_config_validation():
    with pytest.raises(ConfigError, match="one BCM pin per mode"):
        PanelConfig(mode_leds=(5, 6))
    with pytest.raises(ConfigError, match="must all differ"):
        PanelConfig(mode_button=5)
    with pytest.raises(ConfigError, match=r"\[panel\] mode_buton: unknown key, expected one of: .*mode_button"):
        decode(PanelConfig, {"mode_buton": 4})
    with pytest.raises(ConfigError, match="one control index per pin"):
        Pads(MockFactory(), [22], [1, 2])


def test_a_pin_used_twice_is_a_device_error_naming_it_and_its_holder():
    factory = MockFactory()
    panel = Panel(factory, FakeController(), CFG).start()
    try:
        with pytest.raises(DeviceError, match=r"pad on GPIO17: GPIOPinInUse: pin GPIO17 is already in use"):
            Pads(factory, [22, 17], [0, 1])
        Pads(factory, [22], [0]).stop()               # the failed Pads gave pin 22 back
        with pytest.raises(DeviceError, match="pad on GPIO40"):
            Pads(factory, [40], [0])
        with pytest.raises(OSError):                  # DeviceError is also an OSError
            Panel(factory, FakeController(), CFG).start()
    finally:
        panel.stop()
        factory.close()


# ---------------------------------------------------------------- pin factories
@pytest.mark.parametrize("name, platform, chosen", [
    ("auto", PI4, "rpigpio"),            # RPi.GPIO where it works
    ("auto", PI4_TRIXIE, "lgpio"),       # trixie: lgpio
    ("auto", PI5, "lgpio"),              # a Pi 5: lgpio, whatever the OS
    ("auto", Platform("Raspberry Pi Compute Module 5 Rev 1.0", "bookworm"), "lgpio"),
    ("auto", Platform("Raspberry Pi 3 Model B Plus Rev 1.3", ""), "lgpio"),   # release unknown: the maintained one
    ("lgpio", PI4, "lgpio"),
    ("rpigpio", PI4_TRIXIE, "rpigpio"),  # forced: the config knows best
    ("mock", LAPTOP, "mock"),
    ("mock", PI5, "mock"),
])
def test_the_pin_factory_per_platform(name, platform, chosen):
    assert choose(name, platform) == chosen


def test_pin_factory_errors_are_one_clear_line():
    with pytest.raises(DeviceError) as err:
        choose("auto", LAPTOP)
    text = str(err.value)
    assert "needs a Raspberry Pi's pins" in text and 'backend = "mock"' in text and "\n" not in text
    with pytest.raises(DeviceError, match="RPi.GPIO cannot drive the GPIO of a Raspberry Pi 5"):
        choose("rpigpio", PI5)
    with pytest.raises(ConfigError, match="unknown GPIO pin factory 'wiringpi'; expected one of none, auto"):
        choose("wiringpi", PI4)
    assert BACKENDS == ("none",) + FACTORIES and FACTORIES == ("auto", "lgpio", "rpigpio", "mock")


def test_platform_is_read_from_the_device_tree_and_os_release(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\x00")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_CODENAME=trixie\n')
    plat = Platform.read(str(tmp_path))
    assert plat == Platform("Raspberry Pi 5 Model B Rev 1.0", "trixie") and plat.is_pi and plat.rp1
    assert Platform.read(str(tmp_path / "nothing")) == Platform("", "")
    assert not Platform.read("/").is_pi          # this test machine is no Pi: real pins are refused
    with pytest.raises(DeviceError, match="this machine is"):
        open_pins("auto")


def test_a_missing_library_is_a_device_error_that_names_the_pi_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lgpio", None)           # as on a laptop: not installed
    monkeypatch.delitem(sys.modules, "gpiozero.pins.lgpio", raising=False)
    with pytest.raises(DeviceError, match=r"needs lgpio, which is not installed.*'pi' extra"):
        open_pins("lgpio", PI5)


def test_rpi_gpio_off_a_pi_is_a_clear_device_error(monkeypatch):
    import importlib.abc

    class Finder(importlib.abc.MetaPathFinder):        # importing RPi.GPIO off a Pi raises RuntimeError
        def find_spec(self, name, path, target=None):
            if name in ("RPi", "RPi.GPIO"):
                raise RuntimeError("This module can only be run on a Raspberry Pi!")
            return None
    for name in ("RPi", "RPi.GPIO", "gpiozero.pins.rpigpio"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sys, "meta_path", [Finder()] + sys.meta_path)
    with pytest.raises(DeviceError, match="RPi.GPIO cannot drive GPIO here: This module can only be run"):
        open_pins("rpigpio", PI4)


def install(monkeypatch, library: str, chip: Chip):
    """Put a stand-in library where gpiozero imports it, on a Pi 4 (gpiozero reads the revision)."""
    import gpiozero.pins.local
    monkeypatch.setattr(gpiozero.pins.local, "get_pi_revision", lambda: 0xC03115)
    if library == "lgpio":
        monkeypatch.setitem(sys.modules, "lgpio", fake_lgpio(chip))
    else:
        module = fake_rpi_gpio(chip)
        monkeypatch.setitem(sys.modules, "RPi", types.SimpleNamespace(GPIO=module))
        monkeypatch.setitem(sys.modules, "RPi.GPIO", module)
    monkeypatch.delitem(sys.modules, f"gpiozero.pins.{library}", raising=False)


@pytest.mark.parametrize("library", ["lgpio", "rpigpio"])
def test_the_panel_through_gpiozeros_real_factory_for_each_library(monkeypatch, library):
    """The box's panel on gpiozero's LGPIOFactory / RPiGPIOFactory, over a chip kept in memory:
    buttons pulled up, LEDs driven, an edge from the wiring cycles the mode."""
    chip = Chip()
    install(monkeypatch, library, chip)
    pins = open_pins(library, PI4_TRIXIE if library == "lgpio" else PI4)
    assert pins.name == library and type(pins.factory).__name__ == {"lgpio": "LGPIOFactory",
                                                                     "rpigpio": "RPiGPIOFactory"}[library]
    ctl = FakeController()
    panel = Panel(pins.factory, ctl, CFG).start()
    pads = Pads(pins.factory, [22], [0], pull_up=False)
    got = []
    pads.start(lambda v, c: got.append(v[0]))
    try:
        assert chip.pull[MODE] == "up" and chip.pull[SHUTDOWN] == "up" and chip.pull[22] == "down"
        assert all(p in chip.out for p in LEDS)
        assert [chip.level[p] for p in LEDS] == list(lit(Mode.USER))
        chip.drive(MODE, False)                     # a finger on the mode button: the pin goes low
        time.sleep(0.15)
        chip.drive(MODE, True)
        wait_until(lambda: ctl.mode == Mode.CALL_RESPONSE, what="the next mode")
        wait_until(lambda: [chip.level[p] for p in LEDS] == list(lit(Mode.CALL_RESPONSE)), what="its LED")
        chip.drive(22, True)
        wait_until(lambda: got == [1.0], what="the pad")
    finally:
        pads.stop()
        panel.stop()
        pins.close()
    assert not any(chip.level[p] for p in LEDS)
    if library == "rpigpio":
        calls = sys.modules["RPi.GPIO"].calls
        assert ("setmode", (11,), {}) in calls
        assert any(n == "add_event_detect" and a[0] == MODE and kw["bouncetime"] == -666 for n, a, kw in calls), \
            "no bounce time (RPi.GPIO's -666): the settling is ours, the same on every factory"


def test_lgpio_opens_the_pi5_gpio_chip(monkeypatch, tmp_path):
    chip = Chip()
    install(monkeypatch, "lgpio", chip)
    import gpiozero.pins.local
    monkeypatch.setattr(gpiozero.pins.local, "get_pi_revision", lambda: 0xD04170)     # a Pi 5
    pins = open_pins("auto", PI5)
    try:
        assert pins.name == "lgpio" and sys.modules["lgpio"].opened in ([0], [4])
    finally:
        pins.close()


# ---------------------------------------------------------------- the mock, driven from outside
def test_mock_gpio_driven_from_outside_through_its_control_pipe(tmp_path, monkeypatch, caplog):
    path = tmp_path / "gpio"
    monkeypatch.setenv("IMPS_FAKE_GPIO_CONTROL", str(path))
    pins = open_pins("mock")
    held = SettledButton(27, pull_up=True, debounce=0.01, pin_factory=pins.factory)
    pad = SettledButton(22, pull_up=False, debounce=0.01, pin_factory=pins.factory)
    try:
        with open(path, "w") as pipe:     # another process, as a test over ssh would
            pipe.write("press 27\ndrive 22 1\nwiggle 3\npress 99\npress 5\n")
        control = pins.control
        wait_until(lambda: control.commands + control.bad >= 5, 10, what="five commands read")
        assert pins.factory.pin(27).state is False and pins.factory.pin(22).state is True
        wait_until(lambda: held.is_pressed and pad.is_pressed, what="both settled pressed")
        assert (control.commands, control.bad) == (2, 3)
        assert "skipped 'wiggle 3'" in caplog.text and "skipped 'press 99'" in caplog.text
        assert "GPIO5 is not a button or pad" in caplog.text
        with open(path, "w") as pipe:
            pipe.write("release 27\n")
        wait_until(lambda: pins.factory.pin(27).state is True, what="released")
    finally:
        held.close()
        pad.close()
        pins.close()
    assert pins.control is None


def test_mock_gpio_control_must_be_a_pipe(tmp_path, monkeypatch):
    (tmp_path / "gpio").write_text("not a pipe")
    monkeypatch.setenv("IMPS_FAKE_GPIO_CONTROL", str(tmp_path / "gpio"))
    with pytest.raises(DeviceError, match="is not a FIFO"):
        open_pins("mock")


def test_render_leds():
    factory = MockFactory()
    panel = Panel(factory, FakeController(), CFG).start()
    try:
        assert mock.render_leds(factory, LEDS) == "[U---]"
        panel.show_mode(Mode.DUET)
        assert mock.render_leds(factory, LEDS) == "[---D]"
    finally:
        panel.stop()
    assert mock.render_leds(factory, LEDS) == "[----]"
    factory.close()


# ---------------------------------------------------------------- the keyboard of `make run` (imps.sim.keys)
def test_keyboard_drives_the_panel_and_renders_leds():
    from imps.sim.keys import KeyboardPanel
    factory = MockFactory()
    ctl = FakeController()
    commands = []
    panel = Panel(factory, ctl, CFG, run_command=commands.append).start()
    keys = KeyboardPanel(factory, CFG, pads=[22])
    pads_seen = []
    pads = Pads(factory, [22], [3])
    pads.start(lambda v, c: pads_seen.append(v[0]))
    try:
        assert mock.render_leds(factory, LEDS) == "[U---]"
        assert keys.handle_key("m") == "mode button: next mode"
        wait_until(lambda: ctl.mode == Mode.CALL_RESPONSE, what="the next mode")
        wait_until(lambda: mock.render_leds(factory, LEDS) == "[-C--]", what="its LED drawn")
        assert keys.handle_key("1") == "pad 1 down"
        wait_until(lambda: pads_seen == [1.0], what="pad 1 down")
        assert keys.handle_key("1") == "pad 1 up"
        wait_until(lambda: pads_seen == [1.0, 0.0], what="pad 1 up")
        keys.handle_key("r")
        wait_until(lambda: ctl.resets == 1, what="the reset")
        assert keys.handle_key("q") == "quit" and keys.handle_key("x") is None
    finally:
        keys.close()
        pads.stop()
        panel.stop()
    assert commands == []
    assert keys.handle_key("2") is None                        # no pad 2
    assert "not a button or pad" in keys.handle_key("1")       # the panel is gone: said, not raised
    factory.close()
