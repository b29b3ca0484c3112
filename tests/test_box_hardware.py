"""The box with its hardware, end to end: sensor board on a real pseudo-terminal ->
SerialInput -> engine -> OSC out and actuator frames back; the GPIO panel on gpiozero's
mock pins; `imps run --simulate` as a subprocess (with and without a terminal).

Timeouts are generous (a shared 2-core machine); nothing asserts tight timings.
"""
import os
import pty
import random
import select
import subprocess
import termios
import threading
import time
from pathlib import Path

import pytest

from imps.box.health import NO_BOARD_GRACE
from imps.panel import mock
from imps.panel.patterns import NO_MODEL, NO_SENSOR_BOARD
from imps.box.config import PACKAGE_DIR, SECTIONS, load_config
from imps.errors import ConfigError
from imps.io.interaction_log import read_log
from imps.modes import Mode
from imps.io.serial_frames import sensor_frame
from imps.settings import keys
from imps.sim.board import SimulatedBoard
from support import performance, wait_for

EXAMPLE = PACKAGE_DIR / "box.example.toml"
LEDS = (5, 6, 13, 19)          # the default panel's mode LEDs, in Mode order
MODE_BUTTON = 17


def leds(box):
    return tuple(box.gpio.factory.pin(p).state for p in LEDS)


def lit(mode):
    return tuple(i == list(Mode).index(mode) for i in range(len(LEDS)))


@pytest.fixture
def make_box(boxes, tiny_model):
    """A real box on gpiozero's mock pins; ``port``: its sensor board, ``actuators``: model events back to it."""
    def make(port=None, mode="user", model=None, gpio="mock", actuators=None, **sections):
        hardware = {"status": {"terminal": False}, "gpio": {"backend": gpio}}
        if port is not None:
            hardware["serial"] = {"enabled": True, "port": str(port), "retry_interval": 0.1}
        if actuators is not None:
            hardware["actuators"] = {"enabled": True, "controls": actuators}
        for section, values in sections.items():
            hardware.setdefault(section, {}).update(values)
        return boxes(mode, model or tiny_model, **hardware)
    return make


# ---------------------------------------------------------------- config


def test_example_config_loads_and_names_every_key():
    config = load_config(EXAMPLE)
    assert config.serial.enabled and config.gpio.backend == "auto" and config.actuators.enabled
    assert config.panel.mode_leds == LEDS and config.panel.mode_button == MODE_BUTTON
    text = EXAMPLE.read_text()
    for section, cls in SECTIONS.items():
        assert f"[{section}]" in text, section
        for key in keys(cls):
            assert f"\n{key} =" in text or f"\n# {key} =" in text, f"[{section}] {key} missing from the example"


def test_hardware_defaults_are_off_on_a_laptop():
    config = load_config(None)
    assert not config.serial.enabled and config.gpio.backend == "none"
    assert not config.actuators.enabled and config.pads.pins == []


@pytest.mark.parametrize("text, fragments", [
    ('[serial]\nformat = "morse"\n', ["[serial] format = 'morse'", "frames"]),
    ('[serial]\nbaud = 9600\n', ["[serial] baud", "unknown key", "baudrate"]),
    ('[serial]\nport = 7\n', ["[serial] port = 7", "expected str or a list of str"]),
    ('[serial]\nport = "usb:zz"\n', ["[serial] port = 'usb:zz'", "usb:VID"]),
    ('[serial]\nenabled = true\nchannels = [0, false, 5]\n', ["[serial] channels", "5 is not a control index 0..2"]),
    ('[serial]\ncalibration = [[3, 3]]\n', ["[serial] calibration", "raw_min == raw_max"]),
    ('[gpio]\nbackend = "wiringpi"\n', ["[gpio] backend = 'wiringpi'", "none, auto, lgpio, rpigpio or mock"]),
    ('[gpio]\nbackend = "fake"\n', ["[gpio] backend = 'fake'", "none, auto, lgpio, rpigpio or mock"]),
    ('[panel]\nmode_leds = [5, 6]\n', ["[panel] mode_leds = [5, 6]", "one BCM pin per mode"]),
    ('[panel]\nmode_button = 40\n', ["[panel] mode_button = 40", "BCM pin number 0 to 27"]),
    ('[panel]\nlong_press = 0.1\ndebounce = 0.2\n', ["[panel]", "shorter than long_press"]),
    ('[panel]\nblink = 1\n', ["[panel] blink", "unknown key", "shutdown_hold"]),
    ('[gpio]\nbackend = "mock"\n[pads]\npins = [22, 23]\ncontrols = [0]\n', ["[pads]", "one control index per pin"]),
    ('[pads]\npins = [22]\ncontrols = [0]\n', ["[pads]", "[gpio] backend = \"none\""]),
    ('[gpio]\nbackend = "mock"\n[pads]\npins = [17]\ncontrols = [0]\n', ["[pads]", "GPIO [17] already used by [panel]"]),
    ('[actuators]\nenabled = true\n', ["[actuators] enabled", "[serial] enabled = true"]),
    ('[serial]\nenabled = true\n[actuators]\nenabled = true\ncontrols = [3]\n', ["[actuators] controls", "3 is not"]),
])
def test_hardware_config_errors_name_key_value_and_expectation(tmp_path, text, fragments):
    path = tmp_path / "box.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_false_means_none_for_optional_keys(tmp_path):
    path = tmp_path / "box.toml"
    path.write_text('[serial]\nenabled = true\nchannels = [2, false, 0]\n[panel]\nshutdown_button = false\n')
    config = load_config(path)
    assert config.serial.channels == [2, None, 0]
    assert config.panel.shutdown_button is None


# ---------------------------------------------------------------- serial -> engine -> OSC


def test_frames_on_a_pty_reach_the_sound_engine_in_order(pty_pair, make_box, sound, tmp_path):
    master, path = pty_pair
    box = make_box(path, mode="user")
    assert box.serial.wait_connected(10)
    sent = [[i / 40, 1 - i / 40, (i % 7) / 7] for i in range(40)]
    for seq, values in enumerate(sent):
        os.write(master, sensor_frame(seq, values))
        time.sleep(0.005)
    got = [args for _, args in sound.wait_for("/performer", len(sent), timeout=15)]
    assert len(got) == len(sent)
    for want, have in zip(sent, got):
        assert have == pytest.approx(want, abs=1e-4)
    st = box.serial.status()
    assert st["frames"] == len(sent) and st["crc_errors"] == 0 and st["seq_gaps"] == 0
    assert box.check_health() is None
    box.stop()
    records = read_log(box.logwriter.path, 3)
    assert len(records.source_rows("interface")) == len(sent)


def test_board_unplugged_mid_performance_recovers_and_the_leds_say_so(tmp_path, make_box, sound):
    link = tmp_path / "by-id" / "usb-IMPS_board-if00"
    board = SimulatedBoard(performance(), link).start()
    try:
        box = make_box(tmp_path / "by-id" / "usb-IMPS_*", mode="user")
        assert box.serial.wait_connected(10)
        sound.wait_for("/performer", 20, timeout=15)
        board.unplug()
        assert wait_for(lambda: not box.serial.connected)
        t = time.monotonic()
        box.check_health(t)
        assert box.check_health(t + NO_BOARD_GRACE + 0.1) == NO_SENSOR_BOARD
        assert box.panel.status()["error"] == NO_SENSOR_BOARD
        assert "NO BOARD" in box.status_line()
        time.sleep(0.3)           # stays away a while: the reader keeps looking, nothing crashes
        before = len(sound.of("/performer"))
        board.plug()
        t0 = time.monotonic()
        assert box.serial.wait_connected(2.0), "the board was not found again within 2 s"
        reconnected = time.monotonic() - t0
        sound.wait_for("/performer", before + 10, timeout=15)
        assert box.check_health() is None and box.panel.status()["error"] is None
        assert box.serial.status()["reconnects"] == 1 and box.engine.alive()
        assert reconnected < 2.0
    finally:
        board.stop()


def test_garbage_burst_is_counted_and_the_music_goes_on(tmp_path, make_box, sound):
    board = SimulatedBoard(performance(), tmp_path / "board", heartbeat=None).start()
    try:
        box = make_box(tmp_path / "board", mode="user")
        assert box.serial.wait_connected(10)
        sound.wait_for("/performer", 5, timeout=15)
        rng = random.Random(3)
        for _ in range(20):
            board.inject(bytes(rng.randrange(256) for _ in range(100)) + b"\x00")
        before = len(sound.of("/performer"))
        sound.wait_for("/performer", before + 10, timeout=15)
        st = box.serial.status()
        assert st["crc_errors"] + st["bad_frames"] >= 20 and st["connected"] and st["reconnects"] == 0
        assert " bad " in box.status_line() and box.engine.alive()
    finally:
        board.stop()


def test_model_events_come_back_to_the_board_as_actuator_frames(tmp_path, make_box, sound):
    board = SimulatedBoard(performance(), tmp_path / "board").start()
    try:
        box = make_box(tmp_path / "board", mode="user", actuators=[0, 2])
        assert box.serial.wait_connected(10)
        assert wait_for(lambda: box.serial.board is not None)   # hello answered
        box.engine.set_mode("duet")                               # the model plays on
        sound.wait_for("/model", 10, timeout=20)
        box.engine.set_mode("user")
        assert wait_for(lambda: box.engine.mode is Mode.USER)
        time.sleep(0.5)
        model = [args for _, args in sound.of("/model")]
        assert wait_for(lambda: len(board.actuator_log) == len(model))
        for (_, frame), controls in zip(board.actuator_log, model):
            assert frame == pytest.approx([controls[0], controls[2]], abs=1e-4)
        assert box.actuator.sent == len(model) and box.actuator.dropped == 0
        assert f"act {len(model)}" in box.status_line()
    finally:
        board.stop()


# ---------------------------------------------------------------- GPIO panel


def press(box, pin, seconds):
    """A finger on a button of the box's mock pins."""
    mock.press(box.gpio.factory, pin)
    time.sleep(seconds)
    mock.release(box.gpio.factory, pin)


def levels(pin):
    return [s.state for s in pin.states]


def test_panel_buttons_change_the_engines_mode_and_the_leds(make_box):
    box = make_box(mode="user")
    assert box.gpio.name == "mock" and type(box.gpio.factory).__name__ == "MockFactory"
    assert wait_for(lambda: leds(box) == lit(Mode.USER))
    for mode in (Mode.CALL_RESPONSE, Mode.LAYERED):
        press(box, MODE_BUTTON, 0.15)                      # short press: next mode
        assert wait_for(lambda: box.engine.mode is mode)
        assert wait_for(lambda: leds(box) == lit(mode))
    resets = []
    model = box.engine.model
    real_reset = model.reset
    model.reset = lambda: (resets.append(1), real_reset())
    user_led = box.gpio.factory.pin(LEDS[0])
    user_led.clear_states()
    press(box, MODE_BUTTON, box.config.panel.long_press + 0.4)    # long press: reset
    assert wait_for(lambda: resets == [1])
    assert box.engine.mode is Mode.LAYERED                 # a reset is not a mode change
    assert wait_for(lambda: True in levels(user_led)), "all LEDs flash to confirm the reset"
    assert wait_for(lambda: leds(box) == lit(Mode.LAYERED))
    box.engine.set_mode("duet")                            # an OSC mode change shows too
    assert wait_for(lambda: leds(box) == lit(Mode.DUET))
    gpio, pins = box.gpio, [box.gpio.factory.pin(p) for p in LEDS]
    box.stop()
    assert not any(p.state for p in pins) and gpio.closed


def test_no_model_blinks_the_error_and_still_passes_the_performer(pty_pair, make_box, sound, tmp_path):
    master, path = pty_pair
    box = make_box(path, mode="call_response", model=tmp_path / "missing.tflite")
    assert box.engine.model is None and box.engine.mode is Mode.USER
    assert box.check_health() == NO_MODEL
    user_led = box.gpio.factory.pin(LEDS[0])
    user_led.clear_states()
    assert wait_for(lambda: levels(user_led).count(True) >= 2 and False in levels(user_led)), \
        f"the user LED blinks: {levels(user_led)}"
    assert not any(leds(box)[1:])
    press(box, MODE_BUTTON, 0.15)                          # no model: the mode stays user
    assert wait_for(lambda: box.panel.status()["mode_presses"] == 1)
    assert box.engine.mode is Mode.USER
    assert box.serial.wait_connected(10)
    for seq in range(5):
        os.write(master, sensor_frame(seq, [seq / 5, 0.5, 0.25]))
    got = sound.wait_for("/performer", 5, timeout=15)
    assert got[-1][1] == pytest.approx([0.8, 0.5, 0.25], abs=1e-4)
    assert sound.of("/model") == []


def test_pads_are_gesture_channels(make_box, sound):
    box = make_box(mode="user", pads={"pins": [22], "controls": [1]})
    mock.press(box.gpio.factory, 22)
    got = sound.wait_for("/performer", 1, timeout=10)
    assert got[0][1][1] == 1.0
    mock.release(box.gpio.factory, 22)
    got = sound.wait_for("/performer", 2, timeout=10)
    assert got[1][1][1] == 0.0


def test_gpio_off_a_pi_is_one_clear_line_and_the_box_plays_on(make_box, caplog):
    box = make_box(mode="user", gpio="auto")              # the box's setting, on a machine that is no Pi
    assert box.gpio is None and box.panel is None
    assert "needs a Raspberry Pi's pins" in box.gpio_error and "\n" not in box.gpio_error
    assert "playing on without the GPIO panel and pads" in caplog.text
    assert "GPIO OFF" in box.status_line()


# ---------------------------------------------------------------- imps run --simulate


def write_config(tmp_path, sound_port):
    path = tmp_path / "box.toml"
    path.write_text(f"[osc]\ninterface_port = 0\ncontrol_port = 0\nsound_port = {sound_port}\n")
    return path


def test_make_run_plays_and_the_model_answers(tmp_path, device_python, sound):
    """`make run` as the README says, with short phrases so call and response has silences to answer."""
    logs = tmp_path / "logs"
    config = write_config(tmp_path, sound.port)
    with open(config, "a") as f:
        f.write("[performer]\nphrase_seconds = 2.0\nrest_seconds = 3.0\n")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(repo), "run",
         f"ARGS=--duration 20 -q --log-dir {logs} --config {config}"],
        cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sensor board connected" in proc.stderr
    files = list(logs.glob("*-4d-mdrnn.log"))
    assert len(files) == 1
    lines = files[0].read_text().splitlines()
    assert any(",interface," in line for line in lines)
    assert sound.of("/performer")
    # The model answers: in the rests, model events reach the sound engine and the log.
    assert len(sound.of("/model")) >= 3, proc.stderr[-2000:]
    assert sum(",rnn," in line for line in lines) >= 3


def test_imps_run_simulate_on_a_terminal_takes_keys_and_restores_it(tmp_path, device_python, sound):
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    env = dict(os.environ, COLUMNS="250")
    errors = open(tmp_path / "stderr.txt", "w+")
    proc = subprocess.Popen(
        [device_python, "-m", "imps", "run", "--simulate", "--duration", "90", "--no-log",
         "--config", str(write_config(tmp_path, sound.port))],
        cwd=tmp_path, stdin=slave, stdout=slave, stderr=errors, env=env)
    out = bytearray()
    lock = threading.Lock()

    def reader():
        while proc.poll() is None:
            r, _, _ = select.select([master], [], [], 0.1)
            if r:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    return
                with lock:
                    out.extend(data)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()

    def seen(text):
        with lock:
            return text.encode() in out

    def story():
        errors.seek(0)
        return f"terminal: {bytes(out)[-1500:]!r}\nstderr: {errors.read()[-3000:]}"

    try:
        assert wait_for(lambda: seen("LEDs [-C--]"), 60), story()   # call and response lit
        os.write(master, b"m")                                       # mode button
        assert wait_for(lambda: seen("LEDs [--L-]"), 20), story()
        os.write(master, b"q")
        assert proc.wait(60) == 0, story()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        thread.join(2)
        after = termios.tcgetattr(slave)
        os.close(master)
        os.close(slave)
        errors.close()
    assert after[3] & termios.ICANON and after[3] & termios.ECHO   # the terminal is back as it was
    assert after[3] == before[3]
