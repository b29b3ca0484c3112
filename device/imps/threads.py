"""Threads that stop when asked, and complain loudly when they do not."""
from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


def join_or_complain(thread: threading.Thread | None, timeout: float, what: str) -> None:
    """Join ``thread`` (if any); log an error naming ``what`` if it is still alive after ``timeout``."""
    if thread is None:
        return
    thread.join(timeout)
    if thread.is_alive():
        log.error("%s did not stop within %.1f s", what, timeout)
