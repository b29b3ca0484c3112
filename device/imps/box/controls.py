"""The OSC control port: each address, its arguments, and the range it shares with the config.

=====================  ==========================  ===========================
address                arguments                   range (ranges.py)
=====================  ==========================  ===========================
``/mode``              one string                  user, call_response, layered, duet
``/reset``             none, or 0/1/T/F (0: no)    -
``/pause``             none (pause), or 0/1/T/F    -
``/pi_temperature``    one number                  as ``[model] pi_temperature``
``/sigma_temperature`` one number                  as ``[model] sigma_temperature``
``/time_scale``        one number                  as ``[engine] time_scale``
``/threshold``         one number (seconds)        as ``[engine] response_threshold``
=====================  ==========================  ===========================

A wrong argument count, type or range raises BadArguments (a ValueError) in
the receiver's thread before anything reaches the engine; the receiver counts
it as "bad arguments" and the box plays on. A button that sends 1 on press and
0 on release (TouchOSC and friends) resets once, not twice.
"""
from __future__ import annotations

from .. import ranges
from ..errors import ImpsError
from ..io.osc import INTERFACE
from ..modes import Mode


class BadArguments(ImpsError, ValueError):
    """A control message whose arguments do not fit its address."""


def _number(address: str, args: list, section: str, key: str) -> float:
    r = ranges.RANGES[(section, key)]
    if len(args) != 1 or isinstance(args[0], bool) or not isinstance(args[0], (int, float)):
        raise BadArguments(f"{address} wants one number from {r} (as [{section}] {key}), got {args!r:.60}")
    return float(r.check(address, args[0]))


def _flag(address: str, args: list, default: bool) -> bool:
    """Nothing (``default``), T/F, or the number 0 or 1 (int or float, as buttons send); nothing else."""
    if not args:
        return default
    if len(args) == 1 and (isinstance(args[0], bool) or (isinstance(args[0], (int, float)) and args[0] in (0, 1))):
        return bool(args[0])
    raise BadArguments(f"{address} wants nothing, 0, 1, T or F, got {args!r:.60}")


def _mode(args: list) -> Mode:
    if len(args) != 1 or not isinstance(args[0], str):
        raise BadArguments(f"/mode wants one string ({', '.join(m.value for m in Mode)}), got {args!r:.60}")
    return Mode.parse(args[0])


def control_handlers(engine) -> dict:
    """address -> handler(args) for the OSC control port, driving ``engine``."""
    def reset(args):
        if _flag("/reset", args, True):
            engine.reset_state()

    return {
        "/mode": lambda a: engine.set_mode(_mode(a)),
        "/reset": reset,
        "/pause": lambda a: engine.set_paused(_flag("/pause", a, True)),
        "/pi_temperature": lambda a: engine.set_temperatures(pi=_number("/pi_temperature", a, "model", "pi_temperature")),
        "/sigma_temperature": lambda a: engine.set_temperatures(
            sigma=_number("/sigma_temperature", a, "model", "sigma_temperature")),
        "/time_scale": lambda a: engine.set_time_scale(_number("/time_scale", a, "engine", "time_scale")),
        "/threshold": lambda a: engine.set_threshold(_number("/threshold", a, "engine", "response_threshold")),
    }


def interface_handler(engine, dimension: int):
    """The ``/interface f..`` handler: exactly D - 1 finite numbers, else BadArguments."""
    n = dimension - 1

    def handle(args: list) -> None:
        if len(args) != n:
            raise BadArguments(f"/interface wants {n} numbers, got {len(args)}")
        for v in args:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v - v == 0:  # not finite
                raise BadArguments(f"/interface wants {n} finite numbers, got {args!r:.60}")
        engine.performer_event(args, None)
    return handle


def osc_routes(osc, engine, dimension: int) -> list:
    """The box's two OSC ports from the ``[osc]`` settings: (name, host, port, address -> handler)."""
    return [("interface", osc.interface_host, osc.interface_port, {INTERFACE: interface_handler(engine, dimension)}),
            ("control", osc.control_host, osc.control_port, control_handlers(engine))]
