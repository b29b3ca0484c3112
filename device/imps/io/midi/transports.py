"""Where MIDI ports come from: one small interface, one class per transport.

A transport lists port names and opens ports by name through mido's port
interface (``callback`` for inputs; ``send``/``close`` for outputs):

- ``alsa``: USB MIDI (and anything else ALSA's sequencer shows) through mido's
  python-rtmidi backend. python-rtmidi is imported only when this transport is used.
- ``din``: DIN MIDI on a UART (din.py); the "name" is the serial port, a path
  (globs allowed), ``usb:VID[:PID]`` or a pyserial URL, present when it resolves.
- ``virtual``: in-process devices (virtual.py), for the simulation and the tests.

:func:`matches` is how a configured ``device`` picks port names.
"""
from __future__ import annotations

import fnmatch
from typing import Callable, List, Optional

from ...errors import DeviceError
from ..serial_input import resolve_port
from . import virtual
from .din import DinInput, DinOutput


def matches(pattern: str, name: str) -> bool:
    """A glob (``*``, ``?``, ``[``) on the whole name, otherwise a substring; case-insensitive."""
    p, n = pattern.lower(), name.lower()
    if any(c in p for c in "*?["):
        return fnmatch.fnmatchcase(n, p)
    return p in n


class AlsaTransport:
    name = "alsa"

    def __init__(self):
        try:
            import mido
            import rtmidi   # python-rtmidi: fail here, with a clear message
        except ImportError:
            raise DeviceError("MIDI transport \"alsa\" needs python-rtmidi, which is not installed "
                              "(pip install python-rtmidi; on 32-bit Pi OS it comes from piwheels or "
                              "builds with g++, pkg-config and libasound2-dev)") from None
        if rtmidi.API_LINUX_ALSA not in rtmidi.get_compiled_api():
            # python-rtmidi builds without ALSA, silently, when libasound2-dev is missing
            raise DeviceError("python-rtmidi was built without ALSA support: install libasound2-dev, then "
                              "pip install --force-reinstall --no-binary python-rtmidi python-rtmidi")
        self._backend = mido.Backend("mido.backends.rtmidi", api="LINUX_ALSA", load=True)

    def input_names(self) -> List[str]:
        return self._names(self._backend.get_input_names)

    def output_names(self) -> List[str]:
        return self._names(self._backend.get_output_names)

    @staticmethod
    def _names(get) -> List[str]:
        try:
            return list(get())
        except Exception as exc:   # rtmidi raises its own errors when there is no ALSA sequencer
            raise OSError(f"cannot list ALSA MIDI ports: {exc} (no /dev/snd/seq? is snd-seq loaded?)") from None

    def open_input(self, name: str, callback: Optional[Callable] = None):
        return self._open(lambda: self._backend.open_input(name, callback=callback), name)

    def open_output(self, name: str):
        return self._open(lambda: self._backend.open_output(name), name)

    @staticmethod
    def _open(fn, name: str):
        try:
            return fn()
        except OSError:
            raise
        except Exception as exc:
            raise OSError(f"cannot open ALSA MIDI port {name!r}: {exc}") from None


class DinTransport:
    name = "din"

    def __init__(self, baudrate: int = 31250, max_sysex: int = 65536):
        self.baudrate = baudrate
        self.max_sysex = max_sysex

    def names_for(self, spec: str) -> List[str]:
        return [spec] if resolve_port(spec) else []

    def open_input(self, name: str, callback: Optional[Callable] = None):
        return DinInput(self._resolve(name), callback=callback, baudrate=self.baudrate, max_sysex=self.max_sysex)

    def open_output(self, name: str):
        return DinOutput(self._resolve(name), baudrate=self.baudrate)

    @staticmethod
    def _resolve(spec: str) -> str:
        url = resolve_port(spec)
        if url is None:
            raise OSError(f"no serial port at {spec}")
        return url


class VirtualTransport:
    name = "virtual"

    def __init__(self, system: Optional[virtual.VirtualMidi] = None):
        self.system = system or virtual.SYSTEM

    def input_names(self) -> List[str]:
        return self.system.names()

    def output_names(self) -> List[str]:
        return self.system.names()

    def open_input(self, name: str, callback: Optional[Callable] = None):
        return self.system.open_input(name, callback)

    def open_output(self, name: str):
        return self.system.open_output(name)


def port_names(transport, direction: str, device: str) -> List[str]:
    """The names of the ports ``device`` (a configured pattern or serial port) picks right now."""
    if isinstance(transport, DinTransport):
        return transport.names_for(device)
    names = transport.input_names() if direction == "input" else transport.output_names()
    return [n for n in names if matches(device, n)]


def make_transport(kind: str, baudrate: int = 31250, max_sysex: int = 65536,
                   system: Optional[virtual.VirtualMidi] = None):
    if kind == "alsa":
        return AlsaTransport()
    if kind == "din":
        return DinTransport(baudrate, max_sysex)
    if kind == "virtual":
        return VirtualTransport(system)
    raise DeviceError(f"unknown MIDI transport {kind!r} (alsa, din or virtual)")
