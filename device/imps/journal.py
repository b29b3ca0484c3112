"""What reaches the journal: at most a few lines per call site and window, whoever logs.

Bad input is counted and shown in the status line; the journal only needs to
know that it happened. ``RateLimit`` is a logging filter for the box's handler
(``imps run`` installs it): each call site (file and line, so a message built
with an f-string still counts as one) may log ``burst`` lines per ``window``
seconds; the rest are dropped and their number is added to that call site's
next line. It covers every logger, python-osc's root-logger warnings and a
handler bug logged per event included.
"""
from __future__ import annotations

import logging
import threading
import time


class RateLimit(logging.Filter):
    def __init__(self, burst: int = 10, window: float = 10.0, clock=time.monotonic):
        super().__init__()
        self.burst = burst
        self.window = window
        self.clock = clock
        self.suppressed = 0                     # lines dropped so far, all call sites
        self._sites: dict[tuple[str, int], list] = {}   # (path, line) -> [window start, lines, dropped]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.pathname, record.lineno)
        now = self.clock()
        with self._lock:
            site = self._sites.get(key)
            if site is None or now - site[0] >= self.window:
                dropped = site[2] if site else 0
                self._sites[key] = [now, 1, 0]
                if dropped:
                    record.msg = f"{record.getMessage()} [and {dropped} more like this in the last " \
                                 f"{now - site[0]:.0f} s, not shown]"
                    record.args = None
                return True
            site[1] += 1
            if site[1] <= self.burst:
                return True
            site[2] += 1
            self.suppressed += 1
            return False


def rate_limit_handlers(logger: logging.Logger | None = None, **kwargs) -> RateLimit:
    """Put one RateLimit on every handler of ``logger`` (default: the root logger)."""
    limit = RateLimit(**kwargs)
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(limit)
    return limit
