"""The box's one-line status, and the main thread's loop that shows it.

Every part of the box that has something to say gives its own short text
(``summary()``); this module puts them in order. The same line goes to the
terminal, to systemd (``STATUS=``) and, when the box stops, to stderr.
"""
from __future__ import annotations

import logging
import shutil
import time

from .parts import OscPart

log = logging.getLogger(__name__)

#: A key press or similar note stays in the status line this long.
NOTE_SECONDS = 3.0
#: The main loop looks at signals and threads this often, whatever the status interval (up to 60 s) is.
TICK = 0.2


def _engine_parts(s: dict, up: float, kernel_drops: int) -> list:
    parts = [f"mode {s['mode']}",
             f"in {s['performer_events']} ({s['performer_events'] / up:.1f}/s)",
             f"out {s['model_events']} ({s['model_events'] / up:.1f}/s)"]
    if s["predict_us"] is not None:
        parts.append(f"predict {s['predict_us']:.0f} us")
    parts.append(f"lost {s['lost_inputs'] + kernel_drops}" + (f" ({kernel_drops} in the kernel)" if kernel_drops else ""))
    if s["dropped_notes"]:
        parts.append(f"notes dropped {s['dropped_notes']}")
    if s["bad_inputs"]:
        parts.append(f"bad {s['bad_inputs']}")
    if s["errors"]:
        parts.append(f"engine errors {s['errors']}")
    return parts


def status_line(box) -> str:
    """The box's status in one line: what is wrong first, then the figures, then the parts."""
    s = box.engine.status()
    up = max(time.monotonic() - box.started_at, 1e-9)
    parts = []
    dead = box.supervisor.dead()
    if dead:
        parts.append("THREAD DIED " + "; ".join(d[:80] for d in dead))
    osc = box.part(OscPart)
    parts += _engine_parts(s, up, osc.kernel_drops() if osc is not None else 0)
    if box.sound is not None and box.sound.unreachable():
        parts.append("NO SOUND ENGINE")
    parts += [text for part in box.parts if (text := part.summary())]
    parts += [text for text in (extra() for extra in box.status_parts) if text]
    note, when = box.note
    if note and time.monotonic() - when < NOTE_SECONDS:
        parts.append(note)
    if box.logwriter is not None and (log_text := box.logwriter.summary()):
        parts.append(log_text)
    if s["error"]:
        parts.append(f"ERROR {s['error'][:60]}")
    if box.restart_needed:
        parts.append("restart to apply " + ", ".join(box.restart_needed[:3])
                     + (f" (+{len(box.restart_needed) - 3})" if len(box.restart_needed) > 3 else ""))
    return " | ".join(parts)


def status_loop(box, stop, reload_requested, live: bool, duration: float | None = None) -> int:
    """The main thread while the box plays: reloads, health, the status line; 1 when a thread died."""
    deadline = time.monotonic() + duration if duration else None
    last = ""
    next_status = time.monotonic() + box.config.status.interval
    while not stop.wait(min(box.config.status.interval, TICK)):
        if reload_requested.is_set():
            reload_requested.clear()
            box.reload()
        dead = box.supervisor.dead()
        now = time.monotonic()
        if now >= next_status or dead:
            next_status = now + box.config.status.interval   # the running interval (SIGHUP may change it)
            box.check_health()
            line = box.status_line()
            if line != last:
                box.notifier.status(line)
                last = line
            if live:
                width = shutil.get_terminal_size().columns - 1
                print("\r" + line[:width].ljust(min(79, width)), end="", flush=True)
        if dead:
            log.error("thread died: %s; the watchdog pings stopped; exiting so systemd restarts the box",
                      "; ".join(dead))
            return 1
        if deadline and now >= deadline:
            break
    return 0
