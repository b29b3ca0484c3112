"""The engine and its scheduler on a clock of their own: no threads, no UDP, no sleeps.

The engine is not started: ``Engine.pump()`` does the loop's work in the test's thread and
``Scheduler.play_due()`` plays what the fake clock says is due, so thresholds, yielding,
layered due times and the gap clamps are exact. The model is a bundled one
(models/bench/u16-d9.tflite, random weights) on the device runtime; ``Heard`` only keeps the
rows it sampled, so each due time can be checked against the dt that made it.
"""
import pytest

from imps.box.config import PACKAGE_DIR
from imps.box.engine import LOOKAHEAD, Engine, model_gap
from imps.io.osc import MODEL_VOICE, PERFORMER_VOICE, SILENCE
from imps.model.rows import MAX_DT, MIN_DT
from imps.model.runtime import MDRNN
from imps.modes import Mode

MODEL = PACKAGE_DIR / "models" / "bench" / "u16-d9.tflite"
CONTROLS = [0.5] * 8


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Voices:
    """A recording output: (time, address, values) of everything the engine sent."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.sent = []

    def send(self, address, values=()):
        self.sent.append((self.clock(), address, list(values)))

    def of(self, address):
        return [entry for entry in self.sent if entry[1] == address]


class Heard:
    """The bundled model, keeping every row it sampled (the real MDRNN does the work)."""

    def __init__(self, model):
        self.model = model
        self.sampled = []

    def __getattr__(self, name):
        return getattr(self.model, name)

    def sample(self):
        row = self.model.sample()
        self.sampled.append(list(row))
        return row


def engine_on_a_clock(mode, **settings):
    clock = Clock()
    model = Heard(MDRNN(MODEL, seed=3))
    voices = Voices(clock)
    engine = Engine(model, 9, voices=voices, mode=mode, clock=clock, **settings)
    return engine, clock, voices, model


def gap(dt, time_scale=1.0):
    """The gap as the engine's docstring states it (a second statement of model_gap, to check it)."""
    return min(max(dt * time_scale, MIN_DT), MAX_DT)


def test_call_and_response_answers_exactly_at_the_threshold():
    engine, clock, voices, _ = engine_on_a_clock(Mode.CALL_RESPONSE, response_threshold=1.0)
    engine.performer_event(CONTROLS)
    engine.pump()
    assert voices.of(PERFORMER_VOICE) == [(clock.now, PERFORMER_VOICE, CONTROLS)]
    clock.advance(0.999)
    engine.pump()
    assert engine.scheduler.pending() == 0, "answered before the threshold"
    clock.advance(0.001)
    engine.pump()
    assert engine.scheduler.pending() == LOOKAHEAD


def test_model_events_continue_from_the_last_due_time_and_play_when_due():
    """Each event is due at the previous one's due time plus its gap: time spent predicting
    comes out of the wait; and the scheduler plays them at those times, in order."""
    engine, clock, voices, model = engine_on_a_clock(Mode.DUET, time_scale=0.5)
    engine.pump()
    start = clock.now
    due = start
    for _ in range(20):
        [first, *_] = engine.scheduler.due_times()
        clock.now = first
        assert engine.scheduler.play_due() >= 1
        engine.pump()
    played = voices.of(MODEL_VOICE)
    assert len(played) >= 20
    for (when, _, values), row in zip(played, model.sampled):
        due += gap(row[0], 0.5)
        assert when == pytest.approx(due, abs=1e-9)
        assert values == pytest.approx(row[1:])


def test_the_performer_coming_back_drops_the_answer_at_once():
    engine, clock, voices, _ = engine_on_a_clock(Mode.CALL_RESPONSE, response_threshold=0.5)
    engine.performer_event(CONTROLS)
    clock.advance(0.6)
    engine.pump()
    assert engine.scheduler.pending() == LOOKAHEAD
    engine.performer_event([0.9] * 8)
    engine.pump()
    assert engine.scheduler.pending() == 0 and engine.stats.yielded == LOOKAHEAD
    clock.advance(120)             # long past every dropped due time
    engine.scheduler.play_due()
    assert voices.of(MODEL_VOICE) == []


def test_layered_gives_each_performer_event_one_companion_due_after_its_gap():
    engine, clock, voices, model = engine_on_a_clock(Mode.LAYERED, time_scale=2.0)
    sent_at = []
    for i in range(8):               # the schedule holds 8 events
        sent_at.append(clock.now)
        engine.performer_event([i / 10] * 8)
        engine.pump()
        clock.advance(0.25)
    dues = engine.scheduler.due_times()
    assert len(dues) == 8 and len(model.sampled) == 8
    assert dues == pytest.approx(sorted(t + gap(row[0], 2.0) for t, row in zip(sent_at, model.sampled)))


def test_gaps_are_held_at_the_short_bound_when_the_time_scale_is_smallest():
    """At the smallest time scale (0.01) the model's dts make gaps under MIN_DT: each is held at
    MIN_DT, so the model never plays faster than one event per millisecond."""
    engine, clock, _, model = engine_on_a_clock(Mode.LAYERED, time_scale=0.01)
    gaps = []
    for _ in range(5):               # five schedules of 8 companions, each played out
        for _ in range(8):
            engine.performer_event(CONTROLS)
            engine.pump()
        gaps += [due - clock.now for due in engine.scheduler.due_times()]
        clock.advance(MAX_DT + 1)
        assert engine.scheduler.play_due() == 8
        engine.pump()
    assert len(gaps) == len(model.sampled) == 40
    assert sorted(gaps) == pytest.approx(sorted(gap(row[0], 0.01) for row in model.sampled), abs=1e-9)
    assert any(g == pytest.approx(MIN_DT) for g in gaps)


@pytest.mark.parametrize("dt, time_scale, expected", [
    (0.5, 2.0, 1.0), (4.0, 100.0, MAX_DT), (1e300, 100.0, MAX_DT), (float("inf"), 1.0, MAX_DT),
    (-1.0, 1.0, MIN_DT), (0.0, 100.0, MIN_DT), (float("nan"), 1.0, MIN_DT), (0.001, 0.01, MIN_DT)])
def test_the_gap_is_dt_times_the_time_scale_within_its_bounds(dt, time_scale, expected):
    assert model_gap(dt, time_scale) == pytest.approx(expected)


def test_a_mode_change_silences_and_drops_what_was_queued():
    engine, clock, voices, _ = engine_on_a_clock(Mode.DUET)
    engine.pump()
    assert engine.scheduler.pending() == LOOKAHEAD
    engine.set_mode(Mode.USER)
    engine.pump()
    assert engine.scheduler.pending() == 0 and voices.sent[-1][1] == SILENCE
    clock.advance(120)
    engine.pump()
    assert engine.scheduler.play_due() == 0 and voices.of(MODEL_VOICE) == []
