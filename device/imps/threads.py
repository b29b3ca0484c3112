"""The box's long-lived threads: started one way, watched one way, stopped one way.

- ``SupervisedThread``: a daemon thread that, if its loop raises, logs the
  traceback once (naming the thread) and keeps the reason in ``failure``
  instead of vanishing into stderr.
- ``Supervisor``: the essential threads of one box (engine, scheduler, OSC
  receivers, serial reader, log writer). ``healthy()`` is what the watchdog
  asks before every ping, so one dead thread stops the pings and systemd
  restarts the box; ``dead()`` says which thread died and why, for the log
  and the status line.
- ``join_or_complain``: join with a timeout, and say so if the thread will not stop.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Union

log = logging.getLogger(__name__)


class SupervisedThread(threading.Thread):
    """A daemon thread that records why it died (``failure``) and logs it once with the traceback."""

    def __init__(self, target: Callable, name: str, args: tuple = ()):
        super().__init__(target=target, name=name, args=args, daemon=True)
        self.failure: str | None = None

    def run(self) -> None:
        try:
            super().run()
        except BaseException as exc:  # noqa: B036 - recorded and logged, then the thread ends
            self.failure = f"{type(exc).__name__}: {exc}"
            log.critical("thread %s died: %s", self.name, self.failure, exc_info=True)


def start_thread(target: Callable, name: str, args: tuple = ()) -> SupervisedThread:
    thread = SupervisedThread(target, name, args)
    thread.start()
    return thread


#: What a Supervisor watches: a thread, or a callable returning the current one (None: not running).
Watched = Union[threading.Thread, Callable[[], "threading.Thread | None"]]


class Supervisor:
    """The essential threads of one box and whether they are all alive."""

    def __init__(self):
        self._watched: list[tuple[str, Watched]] = []

    def watch(self, label: str, thread: Watched) -> None:
        self._watched.append((label, thread))

    def dead(self) -> list[str]:
        """``"label (thread name): reason"`` for every watched thread that was started and has ended."""
        found = []
        for label, watched in self._watched:
            thread = watched if isinstance(watched, threading.Thread) else watched()
            if thread is None or thread.ident is None or thread.is_alive():
                continue    # not started (yet), or stopped on purpose (the part dropped it), or alive
            reason = getattr(thread, "failure", None) or "ended without an error"
            found.append(f"{label} ({thread.name}): {reason}")
        return found

    def healthy(self) -> bool:
        return not self.dead()

    def labels(self) -> list[str]:
        return [label for label, _ in self._watched]


def join_or_complain(thread: threading.Thread | None, timeout: float, what: str) -> None:
    """Join ``thread`` (if any, and started); log an error naming ``what`` if it is still alive
    after ``timeout``. Every stop of a thread goes through here, so none hangs silently."""
    if thread is None or thread.ident is None:
        return
    thread.join(timeout)
    if thread.is_alive():
        log.error("%s did not stop within %.1f s", what, timeout)
