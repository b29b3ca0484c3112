"""What our own MIDI input ports (DIN on a UART, virtual devices) share with mido's."""
from __future__ import annotations

from typing import Callable, Optional

import mido.ports


class CallbackInput(mido.ports.BaseInput):
    """An input port that hands each message to ``callback`` in the delivering thread, or queues
    it for ``receive()`` when there is none: mido's own contract for ports with callbacks."""

    callback: Optional[Callable] = None

    def _deliver(self, msg) -> None:
        callback = self.callback
        if callback is not None:
            callback(msg)
        else:
            with self._lock:
                self._messages.append(msg)
