"""Stand-ins for the two C-backed GPIO libraries of a Raspberry Pi, for the tests.

RPi.GPIO refuses to import off a Pi and lgpio needs /dev/gpiochip, so these
modules keep a chip's state in memory (pin modes, pulls, levels, edge callbacks)
behind the same calls gpiozero's RPiGPIOFactory and LGPIOFactory make. A test
installs one as ``RPi.GPIO`` or ``lgpio`` in ``sys.modules`` and then runs the
box's own panel code through gpiozero's real factory for that library: the
joint between our config, gpiozero and the library is exercised up to the
kernel. ``chip.drive(pin, level)`` is the wiring: a button pulling a pin low
fires the callbacks the library would.
"""
from __future__ import annotations

import threading
import time
import types


class Chip:
    """The pins of one GPIO chip: what the library was told, and what the wiring does."""

    def __init__(self):
        self.out = {}          # pin -> bool, for outputs
        self.pull = {}         # pin -> "up", "down" or None, for inputs
        self.level = {}        # pin -> bool
        self.callbacks = {}    # pin -> [callback(level)]
        self.writes = []       # (pin, level) in order, for outputs
        self.lock = threading.Lock()

    def claim_input(self, pin, pull):
        self.out.pop(pin, None)
        self.pull[pin] = pull
        self.level.setdefault(pin, pull == "up")

    def claim_output(self, pin, level):
        self.pull.pop(pin, None)
        self.out[pin] = True
        self.write(pin, level)

    def write(self, pin, level):
        self.level[pin] = bool(level)
        self.writes.append((pin, bool(level)))

    def drive(self, pin, level):
        """The outside world sets an input's level (a button to ground drives it low)."""
        assert pin in self.pull, f"GPIO{pin} is not an input"
        with self.lock:
            changed = self.level.get(pin) != bool(level)
            self.level[pin] = bool(level)
            callbacks = list(self.callbacks.get(pin, ())) if changed else []
        for cb in callbacks:
            cb(bool(level))


def fake_rpi_gpio(chip: Chip) -> types.ModuleType:
    """A module with RPi.GPIO's API (the calls gpiozero makes), over ``chip``."""
    g = types.ModuleType("RPi.GPIO")
    g.BCM, g.BOARD = 11, 10
    g.IN, g.OUT, g.I2C, g.SPI, g.HARD_PWM, g.SERIAL, g.UNKNOWN = 1, 0, 42, 41, 43, 40, -1
    g.PUD_OFF, g.PUD_DOWN, g.PUD_UP = 20, 21, 22
    g.RISING, g.FALLING, g.BOTH = 31, 32, 33
    g.HIGH, g.LOW = 1, 0
    pulls = {g.PUD_UP: "up", g.PUD_DOWN: "down", g.PUD_OFF: None}
    g.calls = []

    def record(name, *args, **kw):
        g.calls.append((name, args, kw))

    g.setmode = lambda mode: record("setmode", mode)
    g.setwarnings = lambda flag: record("setwarnings", flag)

    def setup(pin, direction, pull_up_down=g.PUD_OFF, initial=-1):
        record("setup", pin, direction, pull_up_down=pull_up_down, initial=initial)
        if direction == g.OUT:
            chip.claim_output(pin, initial == 1)
        else:
            chip.claim_input(pin, pulls[pull_up_down])
    g.setup = setup
    g.gpio_function = lambda pin: g.OUT if pin in chip.out else g.IN
    g.input = lambda pin: int(chip.level.get(pin, False))

    def output(pin, value):
        record("output", pin, int(value))
        chip.write(pin, value)
    g.output = output

    def add_event_detect(pin, edge, callback=None, bouncetime=None):
        record("add_event_detect", pin, edge, bouncetime=bouncetime)
        chip.callbacks[pin] = [lambda level: callback(pin)]
    g.add_event_detect = add_event_detect

    def remove_event_detect(pin):
        record("remove_event_detect", pin)
        chip.callbacks.pop(pin, None)
    g.remove_event_detect = remove_event_detect
    g.cleanup = lambda *pins: record("cleanup", *pins)
    return g


class _Callback:
    def __init__(self, chip, pin, func):
        self.chip, self.pin = chip, pin
        self.fn = lambda level: func(0, pin, int(level), time.monotonic_ns())
        chip.callbacks.setdefault(pin, []).append(self.fn)

    def cancel(self):
        fns = self.chip.callbacks.get(self.pin, [])
        if self.fn in fns:
            fns.remove(self.fn)


def fake_lgpio(chip: Chip) -> types.ModuleType:
    """A module with lgpio's API (the calls gpiozero makes), over ``chip``."""
    lg = types.ModuleType("lgpio")
    lg.SET_ACTIVE_LOW, lg.SET_OPEN_DRAIN, lg.SET_OPEN_SOURCE = 4, 8, 16
    lg.SET_PULL_UP, lg.SET_PULL_DOWN, lg.SET_PULL_NONE = 32, 64, 128
    lg.RISING_EDGE, lg.FALLING_EDGE, lg.BOTH_EDGES = 1, 2, 3
    is_out = 1 << 1
    lg.error = type("error", (Exception,), {})
    lg.opened = []

    def gpiochip_open(number):
        lg.opened.append(number)
        return 7
    lg.gpiochip_open = gpiochip_open
    lg.gpiochip_close = lambda handle: None

    def claim_input(handle, pin, flags=0):
        pull = "up" if flags & lg.SET_PULL_UP else "down" if flags & lg.SET_PULL_DOWN else None
        chip.claim_input(pin, pull)
    lg.gpio_claim_input = claim_input
    lg.gpio_claim_alert = lambda handle, pin, edges, flags=0: claim_input(handle, pin, flags)
    lg.gpio_claim_output = lambda handle, pin, level=0, flags=0: chip.claim_output(pin, level)
    lg.gpio_free = lambda handle, pin: None

    def get_mode(handle, pin):
        if pin in chip.out:
            return is_out
        pull = chip.pull.get(pin)
        return {"up": lg.SET_PULL_UP, "down": lg.SET_PULL_DOWN}.get(pull, 0)
    lg.gpio_get_mode = get_mode
    lg.gpio_read = lambda handle, pin: int(chip.level.get(pin, False))
    lg.gpio_write = lambda handle, pin, level: chip.write(pin, level)
    lg.gpio_set_debounce_micros = lambda handle, pin, micros: None
    lg.callback = lambda handle, pin, edges, func: _Callback(chip, pin, func)
    lg.tx_pwm = lambda *args: None
    return lg
