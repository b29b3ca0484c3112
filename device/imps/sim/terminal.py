"""Single keys from a terminal (cbreak mode, on a thread), for ``imps run --simulate``."""
from __future__ import annotations

import logging
import os
import select
import sys
import threading

from ..threads import join_or_complain

log = logging.getLogger(__name__)


class TerminalKeys:
    """Reads single keys from a terminal in cbreak mode on a thread; restores the terminal on stop."""

    def __init__(self, on_key, stream=None):
        self.on_key = on_key
        self.fd = (stream or sys.stdin).fileno()
        self._saved = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "TerminalKeys":
        import termios
        import tty
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)       # keys arrive one by one, unechoed; Ctrl-C still signals
        self._thread = threading.Thread(target=self._run, name="imps-keys", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            data = os.read(self.fd, 32)
            if not data:
                return
            for ch in data.decode(errors="ignore"):
                try:
                    self.on_key(ch)
                except Exception:
                    log.exception("key %r", ch)

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        join_or_complain(thread, 1.0, "terminal key reader")
        if self._saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None
