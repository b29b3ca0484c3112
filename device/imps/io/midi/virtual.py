"""In-process MIDI devices: the simulation's controllers and synths, and the tests' hardware seam.

A :class:`VirtualMidi` system holds devices that plug in and out. The box sees
them as the ALSA transport sees USB devices: by port name, through mido's
port interface (``open_input(name, callback=...)``, ``open_output(name)``,
``send``, ``close``). Ports behave as python-rtmidi's do:

- opening a name that is not there raises OSError;
- when a device is unplugged its name leaves the lists, and ports already
  open on it stay open but go quiet (nothing arrives, sends are lost), so
  the box notices only by looking at the names, as it must with ALSA;
- a device plugged back in is a new device: old ports stay quiet.

A device records what the box sent it, with arrival times, and can send
messages to the box as a controller would (:meth:`VirtualDevice.send`).
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import mido
import mido.ports

from .ports import CallbackInput


class VirtualDevice:
    """One device: a controller (sends to the box), a synth (receives from it), or both."""

    def __init__(self, system: "VirtualMidi", name: str):
        self.system = system
        self.name = name
        self.received: List[Tuple[float, mido.Message]] = []   # (monotonic time, message) from the box
        self.sent = 0
        self._cond = threading.Condition()
        self._inputs: List["VirtualInput"] = []                 # the box's input ports on this device

    @property
    def plugged(self) -> bool:
        return self.system.device(self.name) is self

    def send(self, msg: mido.Message) -> None:
        """The device plays ``msg``: every open input port on it receives it (if plugged in)."""
        if not self.plugged:
            return
        self.sent += 1
        for port in list(self._inputs):
            port._deliver(msg)

    def messages(self) -> List[mido.Message]:
        with self._cond:
            return [m for _, m in self.received]

    def wait_for(self, predicate: Callable[[List[mido.Message]], bool], timeout: float = 5.0) -> bool:
        """Wait until ``predicate(messages received so far)`` holds."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                if predicate([m for _, m in self.received]):
                    return True
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)

    def clear(self) -> None:
        with self._cond:
            self.received.clear()

    def _receive(self, msg: mido.Message) -> None:
        with self._cond:
            self.received.append((time.monotonic(), msg))
            self._cond.notify_all()


class VirtualInput(CallbackInput):
    """The box's input port on a virtual device (messages the device sends)."""

    _device_type = "virtual"

    def __init__(self, device: VirtualDevice, callback: Optional[Callable] = None):
        self.device = device
        self.callback = callback
        super().__init__(device.name)
        device._inputs.append(self)

    def _deliver(self, msg: mido.Message) -> None:
        if not self.closed:
            super()._deliver(msg)

    def _close(self) -> None:
        try:
            self.device._inputs.remove(self)
        except ValueError:
            pass


class VirtualOutput(mido.ports.BaseOutput):
    """The box's output port to a virtual device."""

    _device_type = "virtual"

    def __init__(self, device: VirtualDevice):
        self.device = device
        super().__init__(device.name)

    def _send(self, msg: mido.Message) -> None:
        if self.device.plugged:          # an unplugged device hears nothing, and says nothing
            self.device._receive(msg)


class VirtualMidi:
    """A MIDI system of virtual devices, looked up by port name."""

    def __init__(self):
        self._lock = threading.Lock()
        self._devices: Dict[str, VirtualDevice] = {}

    def plug(self, name: str) -> VirtualDevice:
        """Plug in a (new) device called ``name``; returns it."""
        with self._lock:
            device = VirtualDevice(self, name)
            self._devices[name] = device
            return device

    def unplug(self, name: str) -> None:
        with self._lock:
            self._devices.pop(name, None)

    def device(self, name: str) -> Optional[VirtualDevice]:
        with self._lock:
            return self._devices.get(name)

    def names(self) -> List[str]:
        with self._lock:
            return sorted(self._devices)

    def open_input(self, name: str, callback: Optional[Callable] = None) -> VirtualInput:
        device = self.device(name)
        if device is None:
            raise OSError(f"unknown virtual MIDI port {name!r}")
        return VirtualInput(device, callback)

    def open_output(self, name: str) -> VirtualOutput:
        device = self.device(name)
        if device is None:
            raise OSError(f"unknown virtual MIDI port {name!r}")
        return VirtualOutput(device)


#: The process's virtual MIDI system: the simulation plugs its devices in here
#: and ``transport = "virtual"`` in the config opens them.
SYSTEM = VirtualMidi()
