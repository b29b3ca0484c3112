"""The interaction engine: performer events in, model events scheduled out.

One thread, the prediction loop, owns the model: performer events, control
commands and "an event was played" notices all arrive in one bounded inbox
and are handled in order, so modes can switch at any moment without races,
stuck notes or lost events. The loop feeds the systemd watchdog on every
pass, so if it ever hangs, the pings stop and systemd restarts the box.

Modes (see modes.py):
- user:          pass the performer through; the model state still follows
                 the performer (cheap) so any other mode starts in context.
- call_response: after ``response_threshold`` seconds of performer silence
                 the model continues from the performer's last gesture; the
                 moment the performer plays again, queued model events are
                 dropped and the model yields.
- layered:       each performer event gets one predicted companion event.
- duet:          the model plays continuously; performer events are fed into
                 its state as they arrive.

Timing: a generated event is due at the previous model event's due time
plus its predicted dt (times time_scale), so time spent predicting comes out
of the wait. That gap is kept in [MIN_DT, MAX_DT] (rows.py) whatever the model
and the time scale say, so the model never plays faster than one event per
millisecond and never waits longer than a minute. Two events are kept queued:
the next is computed while the current one waits.

Live settings (time scale, threshold, temperatures) are checked against their
one range in ranges.py; an out-of-range value raises ConfigError in the
caller's thread and changes nothing.

Supervision: the loop pings the systemd watchdog only while ``healthy()``
(the Box sets it to "every essential thread is alive"), so one dead thread
anywhere stops the pings.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from .. import ranges
from ..io.interaction_log import MODEL, PERFORMER
from ..io.osc import MODEL_VOICE, PERFORMER_VOICE, SILENCE
from ..model.rows import MAX_DT, MIN_DT, clip01
from ..modes import Mode
from ..threads import SupervisedThread, join_or_complain
from .scheduler import Scheduler

log = logging.getLogger(__name__)

LOOKAHEAD = 2        # model events kept queued ahead of the clock
IDLE_WAKE = 0.25     # the loop wakes at least this often (watchdog, thresholds)


def model_gap(dt: float, time_scale: float) -> float:
    """Seconds from one model event to the next: dt times the time scale, in [MIN_DT, MAX_DT]
    (NaN and below: MIN_DT)."""
    gap = dt * time_scale
    return MIN_DT if not gap >= MIN_DT else (MAX_DT if gap > MAX_DT else gap)


@dataclass
class Stats:
    performer_events: int = 0
    model_events: int = 0
    dropped_inputs: int = 0       # performer events lost: inbox full
    bad_inputs: int = 0           # NaN, wrong channel count
    yielded: int = 0              # model events dropped because the performer came back
    errors: int = 0               # inbox items whose handling raised (a bug): logged, the loop goes on
    predict_seconds: deque = field(default_factory=lambda: deque(maxlen=2000))


class Engine:
    """Thread-safe front (performer_event, set_mode, ...) over a single-threaded loop."""

    def __init__(self, model, dimension: int, *, voices=None, logwriter=None, notifier=None,
                 mode: Mode | str = Mode.CALL_RESPONSE, response_threshold: float = 1.0,
                 time_scale: float = 1.0, queue_size: int = 256, max_dt: float = 5.0,
                 actuators=(), clock=time.monotonic):
        self.dimension = dimension
        self.model = None
        self.error: str | None = None
        self.voices = voices          # where events sound (io/voices.py: the sound engine, MIDI synths)
        self.logwriter = logwriter
        self.notifier = notifier
        self.actuators = list(actuators)
        self.response_threshold = response_threshold
        self.time_scale = time_scale
        self.max_dt = max_dt
        self.clock = clock
        self.paused = False
        self.stats = Stats()
        self._mode = Mode.parse(mode) if isinstance(mode, str) else mode
        self._listeners = []
        self._controls = [0.0] * (dimension - 1)
        self._last_performer: float | None = None
        self._started_at = clock()
        self._model_clock: float | None = None   # due time of the last generated model event
        self._inbox: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self.scheduler = Scheduler(self._play, capacity=max(8, LOOKAHEAD * 4), on_played=self._wake, clock=clock)
        self.thread = SupervisedThread(self._run, "imps-engine")
        self.healthy = lambda: True   # the watchdog is fed only while this says so (Box: every thread alive)
        ping = notifier.watchdog_interval() if notifier is not None else None
        self._idle_wake = min(IDLE_WAKE, ping) if ping else IDLE_WAKE  # wake often enough to feed the watchdog
        self._set_model(model)

    # ------------------------------------------------------------ thread-safe API
    @property
    def mode(self) -> Mode:
        return self._mode

    def performer_event(self, values, channels=None) -> None:
        """The Emit callback for input sources (see inputs.py)."""
        try:
            self._inbox.put_nowait(("performer", (self.clock(), values, channels)))
        except queue.Full:
            self.stats.dropped_inputs += 1

    def submit(self, fn) -> None:
        """Run ``fn()`` in the loop thread (controls, reloads, tests)."""
        self._inbox.put(("call", fn), timeout=1.0)

    def set_mode(self, mode) -> None:
        mode = Mode.parse(mode)  # a bad name fails here, in the caller's thread
        self.submit(lambda: self._set_mode(mode))

    def cycle_mode(self) -> None:
        self.submit(lambda: self._set_mode(self._mode.next()))

    def reset_state(self) -> None:
        self.submit(self._reset)

    def set_paused(self, paused: bool) -> None:
        self.submit(lambda: self._set_paused(bool(paused)))

    def set_temperatures(self, pi: float | None = None, sigma: float | None = None) -> None:
        if pi is not None:
            pi = float(ranges.check("model", "pi_temperature", pi, "pi_temperature"))
        if sigma is not None:
            sigma = float(ranges.check("model", "sigma_temperature", sigma, "sigma_temperature"))

        def apply():
            if self.model is not None:
                if pi is not None:
                    self.model.pi_temperature = float(pi)
                if sigma is not None:
                    self.model.sigma_temperature = float(sigma)
        self.submit(apply)

    def set_time_scale(self, scale: float) -> None:
        scale = float(ranges.check("engine", "time_scale", scale, "time scale"))
        self.submit(lambda: setattr(self, "time_scale", scale))

    def set_threshold(self, seconds: float) -> None:
        seconds = float(ranges.check("engine", "response_threshold", seconds, "response threshold"))
        self.submit(lambda: setattr(self, "response_threshold", seconds))

    def swap_model(self, model) -> None:
        """Take a new (already loaded and checked) model, e.g. after SIGHUP."""
        self.submit(lambda: self._set_model(model))

    def on_mode_change(self, callback) -> None:
        """``callback(mode)`` after every mode change (GPIO LEDs, status)."""
        self._listeners.append(callback)

    def start(self) -> "Engine":
        self.scheduler.start()
        self.thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._wake()
        join_or_complain(self.thread, timeout, "prediction loop")   # not started: a box that failed to start
        self.scheduler.stop(timeout)
        self._silence()

    def alive(self) -> bool:
        return self.thread.is_alive()

    # ------------------------------------------------------------ the loop
    def _wake(self) -> None:
        try:
            self._inbox.put_nowait(("wake", None))
        except queue.Full:
            pass  # the loop has work queued: it will look at the schedule anyway

    def _run(self) -> None:
        inbox = self._inbox
        while not self._stop.is_set():
            try:
                kind, payload = inbox.get(timeout=self._timeout())
            except queue.Empty:
                kind, payload = None, None
            if self.notifier is not None:
                self.notifier.watchdog(healthy=self.healthy)
            self._handle(kind, payload)

    def pump(self) -> None:
        """The loop's work without its thread: every item in the inbox now, then one look at the
        schedule, in the caller's thread. For an engine that is not started, on a clock of its own
        (the tests drive thresholds, yielding and due times with it, no sleeps)."""
        while True:
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                break
            self._handle(kind, payload)
        self._handle(None, None)

    def _handle(self, kind, payload) -> None:
        """One pass of the loop: the item (if any), then generate what is due."""
        try:
            if kind == "performer":
                self._on_performer(*payload)
            elif kind == "call":
                payload()
            self._generate()
        except Exception:  # never let one bad event end the music: counted, shown, logged
            self.stats.errors += 1
            log.exception("engine: error handling %s", kind)

    def _timeout(self) -> float:
        if self._mode is Mode.CALL_RESPONSE and self.model is not None and not self.paused:
            since = self._last_performer if self._last_performer is not None else self._started_at
            remaining = since + self.response_threshold - self.clock()
            if remaining > 0:
                return min(remaining, self._idle_wake)
        return self._idle_wake

    def _on_performer(self, when: float, values, channels) -> None:
        controls = self._controls
        try:
            if channels is None:
                if len(values) != len(controls):
                    raise ValueError(f"{len(values)} values for {len(controls)} controls")
                pairs = enumerate(values)
            else:
                pairs = zip(channels, values)
            new = list(controls)
            for i, v in pairs:
                v = float(v)
                if not v == v:  # NaN
                    raise ValueError("NaN")
                new[i] = clip01(v)
        except (ValueError, TypeError, IndexError):
            self.stats.bad_inputs += 1
            return
        self._controls = new
        self.stats.performer_events += 1
        if self.voices is not None:
            self.voices.send(PERFORMER_VOICE, new)
        if self.logwriter is not None:
            self.logwriter.write(PERFORMER, new)
        dt = 0.0 if self._last_performer is None else min(when - self._last_performer, self.max_dt)
        self._last_performer = when
        if self.model is None:
            return
        if self._mode is Mode.CALL_RESPONSE:
            self.stats.yielded += self.scheduler.clear()
            self._model_clock = None
        row = [dt] + new
        started = time.perf_counter()
        self.model.step(row)
        if self._mode is Mode.LAYERED and not self.paused:
            companion = self.model.sample()
            self.scheduler.schedule(when + self._gap(companion[0]), companion[1:])
        self.stats.predict_seconds.append(time.perf_counter() - started)

    def _generating(self) -> bool:
        if self.model is None or self.paused:
            return False
        if self._mode is Mode.DUET:
            return True
        if self._mode is Mode.CALL_RESPONSE:
            since = self._last_performer if self._last_performer is not None else self._started_at
            return self.clock() - since >= self.response_threshold
        return False

    def _generate(self) -> None:
        if not self._generating():
            return
        model, scheduler = self.model, self.scheduler
        while scheduler.pending() < LOOKAHEAD:
            started = time.perf_counter()
            row = model.sample()
            now = self.clock()
            base = self._model_clock if self._model_clock is not None and self._model_clock > now - 0.05 else now
            due = base + self._gap(row[0])
            if not scheduler.schedule(due, row[1:]):
                return
            self._model_clock = due
            model.step(row)  # the model hears itself, so the next event continues the phrase
            self.stats.predict_seconds.append(time.perf_counter() - started)

    def _gap(self, dt: float) -> float:
        return model_gap(dt, self.time_scale)

    def _play(self, controls) -> None:
        """Called by the scheduler thread at the event's due time."""
        self.stats.model_events += 1
        if self.voices is not None:
            self.voices.send(MODEL_VOICE, controls)
        for actuator in self.actuators:
            actuator.send(controls)
        if self.logwriter is not None:
            self.logwriter.write(MODEL, controls)

    # ------------------------------------------------------------ loop-thread helpers
    def _silence(self) -> None:
        if self.voices is not None:
            self.voices.send(SILENCE)

    def _drop_queued(self) -> None:
        self.stats.yielded += self.scheduler.clear()
        self._model_clock = None

    def _set_mode(self, mode: Mode) -> None:
        if self.model is None and mode is not Mode.USER:
            log.warning("mode %s needs a model (%s); staying in user mode", mode.value, self.error)
            mode = Mode.USER
        if mode is self._mode:
            return
        self._drop_queued()
        self._silence()
        self._mode = mode
        if mode is Mode.CALL_RESPONSE:
            self._started_at = self.clock()
        log.info("mode: %s", mode.value)
        for callback in self._listeners:
            callback(mode)

    def _reset(self) -> None:
        self._drop_queued()
        self._silence()
        if self.model is not None:
            self.model.reset()
        self._started_at = self.clock()
        log.info("model state reset")

    def _set_paused(self, paused: bool) -> None:
        self.paused = paused
        if paused:
            self._drop_queued()
            self._silence()

    def _set_model(self, model) -> None:
        if model is not None and model.dimension != self.dimension:
            log.error("refusing model %s: dimension %d, the box has %d", model.path, model.dimension, self.dimension)
            return
        self._drop_queued()
        self.model = model
        if model is None:
            self.error = self.error or "no model"
            self._set_mode(Mode.USER)
        else:
            self.error = None

    # ------------------------------------------------------------ reporting
    def status(self) -> dict:
        s = self.stats
        times = sorted(s.predict_seconds)
        return {
            "mode": self._mode.value + (" (paused)" if self.paused else ""),
            "performer_events": s.performer_events,
            "model_events": s.model_events,
            "predict_us": times[len(times) // 2] * 1e6 if times else None,
            "lost_inputs": s.dropped_inputs,                   # performer events the box could not take
            "dropped_notes": self.scheduler.dropped_full,       # model notes discarded (schedule full)
            "bad_inputs": s.bad_inputs,
            "yielded": s.yielded,
            "errors": s.errors + self.scheduler.play_errors,
            "error": self.error,
        }
