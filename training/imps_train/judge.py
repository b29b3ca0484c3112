"""Judge a model against real playing, as a musician would hear it.

The model plays in two ways, at the temperatures in its sidecar, with the
device runtime and sampler (what the box does):

- **free-running**: from ``reset()``, each seed plays ``seconds`` of music on
  its own (its output is its next input);
- **call-and-response**: a window of the held-out player's performance
  (``call`` seconds) is fed in, then the model answers for ``answer`` seconds.

Both are compared with the *player*: the longest held-out performance of the
model's own training split (``windows.split``: the published datasets, 10%,
seed 0), never trained on. The second-longest held-out performance gets the
same table: the real-vs-real reference, how far two real performances of the
same instrument are apart on each row.

The feature table (``features``), on events (rows) within one run, never
across two:

- a control *moves* at an event when it changes by more than ``MOVE`` (0.01,
  about one MIDI step) since the previous event;
- ``one_control``: share of events where exactly one control moves;
- ``moving``: controls moving per event (mean);
- ``rest_change``: at a *rest* (an event whose dt is above ``REST``, 0.5 s),
  the total |change| of all controls (median over rests): does the patch
  survive a rest;
- ``axis``: share of x/y moves along one axis (4-D LightPad only,
  ``structure.dominance``);
- ``edge_<i>``: share of events with control i at exactly 0 or 1;
- ``events_per_s``, ``rest_median`` (s), ``phrase_events`` and
  ``phrase_s`` (median events and seconds between two rests);
- ``dt_p10/p50/p90``: the dt distribution's deciles and median;
- ``step_<i>``: median size of control i's move when it moves;
- ``ac1/ac5/ac20``: autocorrelation of the per-event control change (mean over
  controls) at lags 1, 5 and 20: smooth ramps are high, jitter is near 0;
- ``w1_dt``, ``w1_values``: Wasserstein-1 distance of dt (s) and of the
  control values (mean over controls) to the player's performance.

``lead``: in call-and-response, the share of windows where the answer's first
moving control is the control the caller moved last (chance: 1 / controls).
The real continuation of each call gets the same score.

The fair held-out likelihood (``bin_log2_probability``): every head samples
rows the box can play, so it is judged on the probability it gives the
player's next row *at the instrument's resolution*: each control's value
rounded to one of 128 levels (n / 127, MIDI's resolution; the levels 0 and 1
own the tail beyond them, as the box's clip does) and dt to a 10 ms bin (the
first bin owns everything below it). The probability of that cell of the grid
under the mixture, teacher-forced along the player's performance, is averaged
as bits per event (lower is better). Densities are not comparable between
heads that put mass on exact values; probabilities of the same cells are.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from imps.errors import ImpsError
from imps.model.dataset import Dataset
from imps.model.heads import EDGE
from imps.model.model_file import model_sha256, split_params

from . import structure
from .temperatures import wasserstein_1d
from .windows import split

#: A control moves at an event when it changes by more than this (about one MIDI step: 1/127).
MOVE = 0.01
#: An event after a pause longer than this (seconds) ends a rest.
REST = 0.5
#: Resolution of the likelihood: controls at MIDI's 128 levels, dt in 10 ms bins.
LEVELS = 127
DT_BIN = 0.01
#: The free-running guard: a model that plays faster than this is stopped at this many events per second.
MAX_EVENTS_PER_S = 200


class JudgeError(ImpsError):
    """The judge cannot run as asked."""


# -- the feature table ---------------------------------------------------------------------------

def _runs(runs) -> list[np.ndarray]:
    runs = [runs] if isinstance(runs, np.ndarray) else list(runs)
    return [np.asarray(r, np.float64) for r in runs if len(r) >= 2]


def _autocorrelation(series: list[np.ndarray], lag: int) -> float:
    """Pearson correlation of x[t] and x[t + lag], the pairs pooled over the series (never across two)."""
    a = [s[:-lag] for s in series if len(s) > lag]
    b = [s[lag:] for s in series if len(s) > lag]
    if not a:
        return float("nan")
    a, b = np.concatenate(a), np.concatenate(b)
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def features(runs, reference: np.ndarray | None = None) -> dict:
    """The feature table of one or more runs (arrays of rows); W1 rows against ``reference`` if given."""
    runs = _runs(runs)
    if not runs:
        raise JudgeError("no run of at least two events to measure")
    d = runs[0].shape[1]
    change = [np.abs(np.diff(r[:, 1:], axis=0)) for r in runs]     # (events - 1, controls) per run
    dts = [r[1:, 0] for r in runs]                                  # the dt of each measured event
    ch, dt = np.concatenate(change), np.concatenate(dts)
    moving = ch > MOVE
    count = moving.sum(1)
    rests = dt > REST
    all_rows = np.concatenate(runs)
    out = {"events": int(len(all_rows)),
           "one_control": float(np.mean(count == 1)),
           "moving": float(np.mean(count)),
           "rest_change": float(np.median(ch[rests].sum(1))) if rests.any() else float("nan"),
           "events_per_s": float(len(all_rows) / max(all_rows[:, 0].sum(), 1e-9)),
           "rest_median": float(np.median(dt[rests])) if rests.any() else float("nan"),
           "rests": int(rests.sum())}
    if d == 4:
        out["axis"] = structure.features(runs, [1, 2])["axis_fraction"]
    for i in range(1, d):
        v = all_rows[:, i]
        out[f"edge_{i}"] = float(np.mean((v <= 0.0) | (v >= 1.0)))
    phrase_n, phrase_s = [], []
    for r in runs:
        cuts = np.flatnonzero(r[1:, 0] > REST) + 1
        for seg in np.split(r, cuts):
            phrase_n.append(len(seg))
            phrase_s.append(seg[1:, 0].sum())     # the rest before a phrase is not part of it
    out["phrase_events"] = float(np.median(phrase_n))
    out["phrase_s"] = float(np.median(phrase_s))
    for q in (10, 50, 90):
        out[f"dt_p{q}"] = float(np.percentile(all_rows[:, 0], q))
    for i in range(1, d):
        moved = ch[:, i - 1][moving[:, i - 1]]
        out[f"step_{i}"] = float(np.median(moved)) if len(moved) else 0.0
    for lag in (1, 5, 20):
        per_control = [_autocorrelation([c[:, j] for c in change], lag) for j in range(d - 1)]
        finite = [v for v in per_control if math.isfinite(v)]
        out[f"ac{lag}"] = float(np.mean(finite)) if finite else float("nan")
    if reference is not None:
        ref = np.asarray(reference, np.float64)
        out["w1_dt"] = wasserstein_1d(all_rows[:, 0], ref[:, 0])
        out["w1_values"] = float(np.mean([wasserstein_1d(all_rows[:, i], ref[:, i]) for i in range(1, d)]))
    return out


def leading_control(before: np.ndarray, rows: np.ndarray, last: bool) -> int | None:
    """The index (0-based among the controls) of the first (or, ``last``, the last) control to move
    in ``rows``, changes counted from ``before`` (the row preceding them); the biggest move of the
    event wins a tie; None if nothing moves."""
    seq = np.vstack([before[None, :], rows])
    ch = np.abs(np.diff(seq[:, 1:], axis=0))
    events = np.flatnonzero((ch > MOVE).any(1))
    if not len(events):
        return None
    e = events[-1] if last else events[0]
    return int(np.argmax(ch[e]))


def lead_share(windows: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Share of (call, answer) windows whose answer first moves the control the call moved last."""
    hits = []
    for call, answer in windows:
        caller = leading_control(call[0], call[1:], last=True)
        if caller is None:
            continue
        hits.append(leading_control(call[-1], answer, last=False) == caller)
    return float(np.mean(hits)) if hits else float("nan")


# -- the fair likelihood -------------------------------------------------------------------------

_erfc = np.frompyfunc(math.erfc, 1, 1)


def _normal_cdf_interval(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """P(lo < Z < hi) for standard normal Z, accurate in both tails (erfc of the far side)."""
    lo, hi = np.broadcast_arrays(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
    upper = lo > 0           # both bounds above the mean: use the upper tail Q(z) = erfc(z / sqrt 2) / 2
    q = lambda z: 0.5 * _erfc(z / math.sqrt(2)).astype(np.float64)  # noqa: E731
    p = np.where(upper, q(lo) - q(hi), q(-hi) - q(-lo))
    return np.maximum(p, 0.0)


def bins(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The grid cell of a row in real units: (low, high) per dimension, the edge cells open."""
    row = np.asarray(row, np.float64)
    lo, hi = np.empty_like(row), np.empty_like(row)
    k = math.floor(row[0] / DT_BIN)
    lo[0], hi[0] = (-np.inf if k <= 0 else k * DT_BIN), (k + 1) * DT_BIN
    n = np.clip(np.round(row[1:] * LEVELS), 0, LEVELS)
    lo[1:] = np.where(n <= 0, -np.inf, (n - 0.5) / LEVELS)
    hi[1:] = np.where(n >= LEVELS, np.inf, (n + 0.5) / LEVELS)
    return lo, hi


def classic_bin_log2_probability(params, row, dimension: int, mixtures: int, scale: float,
                                 pi_temperature: float, sigma_temperature: float) -> float:
    """log2 P(the row's grid cell) under the classic head's tempered mixture (params in scaled units)."""
    mus, sigmas, logits = split_params(np.asarray(params, np.float64), dimension, mixtures)
    z = logits / pi_temperature
    w = np.exp(z - z.max())
    w /= w.sum()
    sd = sigmas * math.sqrt(sigma_temperature)
    lo, hi = bins(row)
    p = _normal_cdf_interval((lo * scale - mus) / sd, (hi * scale - mus) / sd)    # (K, D)
    per_component = np.exp(np.log(np.maximum(p, 1e-300)).sum(1))
    return math.log2(max(float(w @ per_component), 1e-300))


def _logit(v):
    v = np.clip(v, EDGE, 1 - EDGE)
    return np.log(v) - np.log1p(-v)


def moves_bin_log2_probability(params, row, previous, dimension: int, mixtures: int,
                               pi_temperature: float, sigma_temperature: float) -> float:
    """log2 P(the row's grid cell) under the moves head (heads.py), given the previous row (real units):
    dt's mixture over log seconds, then per control: stay (the previous value's own cell) or move
    (the change in log-odds from its mixture, the cell's edges mapped to log-odds)."""
    p = np.asarray(params, np.float64)
    k, c, spread = mixtures, dimension - 1, math.sqrt(sigma_temperature)
    lo, hi = bins(row)

    def mixture_mass(mus, sigmas, logits, a, b):
        z = logits / pi_temperature
        w = np.exp(z - z.max())
        w /= w.sum()
        sd = sigmas * spread
        return float(w @ _normal_cdf_interval((a - mus) / sd, (b - mus) / sd))

    log_lo, log_hi = (math.log(lo[0]) if lo[0] > 0 else -np.inf), math.log(hi[0])
    total = math.log2(max(mixture_mass(p[:k], p[k:2 * k], p[2 * k:3 * k], log_lo, log_hi), 1e-300))
    blocks = p[3 * k:].reshape(c, 1 + 3 * k)
    here = np.clip(np.asarray(previous, np.float64)[1:], 0.0, 1.0)
    u = _logit(here)
    here_lo, here_hi = bins(np.concatenate([[0.0], here]))
    a, b = np.full(c, -np.inf), np.full(c, np.inf)      # the cell's edges in log-odds (open at 0 and 1)
    inner_lo, inner_hi = np.isfinite(lo[1:]), np.isfinite(hi[1:])
    a[inner_lo], b[inner_hi] = _logit(lo[1:][inner_lo]), _logit(hi[1:][inner_hi])
    for i in range(c):
        m = blocks[i, 0] / pi_temperature
        p_move = 1.0 / (1.0 + math.exp(-m)) if m > -700 else 0.0
        stays_here = here_lo[i + 1] == lo[i + 1] and here_hi[i + 1] == hi[i + 1]
        moved = mixture_mass(blocks[i, 1:1 + k], blocks[i, 1 + k:1 + 2 * k], blocks[i, 1 + 2 * k:],
                             a[i] - u[i], b[i] - u[i])
        total += math.log2(max((1 - p_move) * stays_here + p_move * moved, 1e-300))
    return total


def heldout_bits(model, performance: np.ndarray, rows: int, temperatures: list[tuple[float, float]],
                 progress: bool = False) -> dict:
    """Mean -log2 P(next row's grid cell) over the first ``rows`` rows of a performance, teacher-forced
    from reset, for each (pi, sigma) pair: {"pi,sigma": bits per event}."""
    from tqdm.auto import tqdm

    perf = performance[:rows]
    total = {t: 0.0 for t in temperatures}
    s = model.shape
    model.reset()
    params = np.array(model._params)   # what reset() predicts: the box's first row comes from it
    previous = np.zeros(s.dimension)   # what the input buffer holds after reset()
    for row in tqdm(perf, unit="row", desc="held-out likelihood", disable=not progress, leave=False):
        for t in temperatures:
            if model.head == "moves":
                total[t] -= moves_bin_log2_probability(params, row, previous, s.dimension, s.mixtures, *t)
            else:
                total[t] -= classic_bin_log2_probability(params, row, s.dimension, s.mixtures, s.input_scale, *t)
        params = np.array(model.step(row))
        previous = row
    return {f"{p:g},{q:g}": v / len(perf) for (p, q), v in total.items()}


# -- playing ---------------------------------------------------------------------------------------

def play(model, seconds: float, seed: int, prime: np.ndarray | None = None) -> np.ndarray:
    """Reset, hear ``prime`` (if any), then play ``seconds`` of the model's own rows."""
    model.reset()
    model.sampler.seed(seed)
    if prime is not None:
        for row in prime:
            model.step(row)
    out, elapsed, cap = [], 0.0, int(seconds * MAX_EVENTS_PER_S) + 1
    while elapsed < seconds and len(out) < cap:
        row = model.sample()
        out.append(row)
        elapsed += row[0]
        model.step(row)
    return np.array(out, np.float64)


def until(rows: np.ndarray, start: int, seconds: float) -> int:
    """The index one past the last row of ``rows[start:]`` that falls within ``seconds``."""
    t = np.cumsum(rows[start:, 0])
    return start + int(np.searchsorted(t, seconds, side="right"))


def call_windows(performance: np.ndarray, count: int, call: float, answer: float) -> list[tuple[int, int, int]]:
    """(start, end of call, end of the real answer) row indices of ``count`` evenly spread windows."""
    t = np.concatenate([[0.0], np.cumsum(performance[:, 0])])
    last_start = np.searchsorted(t, t[-1] - call - answer, side="right") - 1
    if last_start < 1:
        raise JudgeError(f"the player's performance ({t[-1]:.0f} s) is shorter than one call "
                         f"({call:g} s) and answer ({answer:g} s)")
    out = []
    for start in np.linspace(0, last_start, count).astype(int):
        end = until(performance, start, call)
        out.append((int(start), end, until(performance, end, answer)))
    return out


# -- the whole judgement ---------------------------------------------------------------------------

def held_out(dataset: Dataset, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(the player, the reference): the longest and second-longest held-out performances."""
    _, held = split(dataset, fraction, seed)
    perfs = sorted(held.performances(), key=len, reverse=True)
    if len(perfs) < 2:
        raise JudgeError(f"the held-out split has {len(perfs)} performance(s); the judge needs two "
                         "(the player and the real-vs-real reference)")
    return np.asarray(perfs[0], np.float64), np.asarray(perfs[1], np.float64)


def judge(model_path, dataset: Dataset, out_dir, seeds: int = 5, seconds: float = 180.0, windows: int = 30,
          call: float = 8.0, answer: float = 8.0, likelihood_rows: int = 5000, val_fraction: float = 0.1,
          split_seed: int = 0, runtime: str = "auto", progress: bool = True) -> dict:
    """Play, measure and draw; write judge.json, judge.md and the pictures into out_dir."""
    from tqdm.auto import tqdm

    from imps.model.runtime import MDRNN

    model_path, out = Path(model_path), Path(out_dir)
    model = MDRNN(model_path, runtime=runtime)
    if dataset.dimension != model.dimension:
        raise JudgeError(f"model {model_path.name} is {model.dimension}-D but the dataset is {dataset.dimension}-D")
    player, reference = held_out(dataset, val_fraction, split_seed)
    spans = call_windows(player, windows, call, answer)

    free = [play(model, seconds, seed) for seed in tqdm(range(seeds), unit="seed", desc="free-running",
                                                         disable=not progress)]
    answers, real_answers, calls = [], [], []
    for n, (a, b, c) in enumerate(tqdm(spans, unit="window", desc="call-and-response", disable=not progress)):
        calls.append(player[a:b])
        answers.append(play(model, answer, 10_000 + n, prime=player[a:b]))
        real_answers.append(player[b:c])
    # The answer's changes are counted from the call's last row: its first move is a move.
    joined = [np.vstack([c[-1:], x]) for c, x in zip(calls, answers)]
    joined_real = [np.vstack([c[-1:], x]) for c, x in zip(calls, real_answers) if len(x)]
    temps = [(1.0, 1.0), (model.pi_temperature, model.sigma_temperature)]
    temps = list(dict.fromkeys(temps))
    bits = heldout_bits(model, player, likelihood_rows, temps, progress)
    table = {
        "player": features(player, player),
        "reference": features(reference, player),
        "free": features(free, player),
        "answers": features(joined, player) | {"lead": lead_share(list(zip(calls, answers)))},
        "real_answers": features(joined_real, player) | {"lead": lead_share(list(zip(calls, real_answers)))},
    }
    summary = {"model": model_path.name, "model_sha256": model_sha256(model_path.read_bytes()),
               "head": model.head, "dimension": model.dimension,
               "pi_temperature": model.pi_temperature, "sigma_temperature": model.sigma_temperature,
               "runtime": model.runtime,
               "setup": {"seeds": seeds, "seconds": seconds, "windows": len(spans), "call_s": call,
                         "answer_s": answer, "likelihood_rows": min(likelihood_rows, len(player)),
                         "val_fraction": val_fraction, "split_seed": split_seed,
                         "player_rows": len(player), "reference_rows": len(reference),
                         "move": MOVE, "rest": REST, "levels": LEVELS, "dt_bin": DT_BIN},
               "heldout_bits": bits, "table": table}
    out.mkdir(parents=True, exist_ok=True)
    (out / "judge.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    (out / "judge.md").write_text(markdown(summary) + "\n")
    draw_traces(player, free[0], out / "traces.png", f"{model_path.name}: the held-out player vs free-running")
    if model.dimension == 4:
        draw_xy(player, reference, free, out / "xy.png", model_path.name)
    return summary


# -- reading it ------------------------------------------------------------------------------------

ROWS = [("one_control", "events where exactly one control moves", "{:.2f}"),
        ("moving", "controls moving per event (mean)", "{:.2f}"),
        ("rest_change", "total control change across a rest (median)", "{:.3f}"),
        ("axis", "x/y moves along one axis", "{:.2f}"),
        ("edge", "events at exactly 0 or 1, per control (%)", None),
        ("events_per_s", "events per second", "{:.1f}"),
        ("rest_median", "rest (> 0.5 s): median length (s)", "{:.2f}"),
        ("rests", "rests", "{:d}"),
        ("phrase_events", "phrase between rests: median events", "{:.0f}"),
        ("phrase_s", "phrase between rests: median length (s)", "{:.2f}"),
        ("dt", "dt p10 / p50 / p90 (ms)", None),
        ("step", "median move of each control when it moves", None),
        ("ac", "autocorrelation of control change, lags 1 / 5 / 20", None),
        ("lead", "call-and-response: the answer's first control is the caller's last", "{:.2f}"),
        ("w1_dt", "W1 of dt to the player (s)", "{:.4f}"),
        ("w1_values", "W1 of values to the player (mean over controls)", "{:.4f}"),
        ("events", "events measured", "{:d}")]
COLUMNS = [("player", "held-out player"), ("reference", "another held-out performance"),
           ("free", "model, free-running"), ("answers", "model, answers"),
           ("real_answers", "player's own answers")]


def _cell(t: dict, key: str, fmt: str | None, d: int) -> str:
    if key == "edge":
        return " ; ".join(f"{100 * t[f'edge_{i}']:.1f}" for i in range(1, d))
    if key == "dt":
        return " / ".join(f"{1000 * t[f'dt_p{q}']:.0f}" for q in (10, 50, 90))
    if key == "step":
        return " ; ".join(f"{t[f'step_{i}']:.3f}" for i in range(1, d))
    if key == "ac":
        return " / ".join(f"{t[f'ac{lag}']:.2f}" for lag in (1, 5, 20))
    v = t.get(key)
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return fmt.format(v)


def markdown(summary: dict) -> str:
    """The feature table as Markdown, with the likelihood and the setup under it."""
    d, t = summary["dimension"], summary["table"]
    lines = [f"| {summary['model']} ({summary['head']} head, pi {summary['pi_temperature']:g}, sigma "
             f"{summary['sigma_temperature']:g}) | " + " | ".join(name for _, name in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for key, label, fmt in ROWS:
        if key == "axis" and d != 4:
            continue
        lines.append(f"| {label} | " + " | ".join(_cell(t[c], key, fmt, d) for c, _ in COLUMNS) + " |")
    s = summary["setup"]
    bits = ", ".join(f"{v:.2f} bits at pi,sigma {k}" for k, v in summary["heldout_bits"].items())
    lines += ["", f"Held-out likelihood of the player's next row (128 levels per control, 10 ms dt bins, "
                  f"first {s['likelihood_rows']} rows): {bits} per event.",
              f"Free-running: {s['seeds']} seeds x {s['seconds']:g} s from reset; call-and-response: "
              f"{s['windows']} windows of {s['call_s']:g} s call and {s['answer_s']:g} s answer; the player is "
              f"the longest held-out performance ({s['player_rows']} rows), the reference the next "
              f"({s['reference_rows']} rows)."]
    return "\n".join(lines)


def draw_traces(real: np.ndarray, generated: np.ndarray, path, title: str, seconds: float = 60.0) -> None:
    """Each control over time: the player (left) and the model (right), the first ``seconds``."""
    from .plots import plt

    d = real.shape[1]
    fig, axes = plt.subplots(d - 1, 2, figsize=(12, 1.1 * (d - 1) + 1), dpi=100, sharex=True, sharey=True,
                             squeeze=False)
    for col, (rows, name, colour) in enumerate(((real, "held-out player", "tab:blue"),
                                                (generated, "model", "tab:red"))):
        t = np.cumsum(rows[:, 0])
        keep = t <= seconds
        for i in range(1, d):
            ax = axes[i - 1, col]
            ax.step(t[keep], rows[keep, i], where="post", color=colour, lw=0.9)
            ax.set_ylim(-0.05, 1.05)
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"x{i}", rotation=0, labelpad=12)
        axes[0, col].set_title(name)
        axes[-1, col].set_xlabel("seconds")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_xy(player: np.ndarray, reference: np.ndarray, free: list, path, name: str) -> None:
    """x against y for the 4-D LightPad, pressure as the dot size: two real performances and the model."""
    from .plots import plt

    panels = ((player, "held-out player", "tab:blue"), (reference, "another held-out performance", "tab:green"),
              (np.concatenate(free), f"{name}, free-running", "tab:red"))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), dpi=100)
    for ax, (rows, title, colour) in zip(axes, panels):
        rows = rows[:4000]
        ax.scatter(rows[:, 1], rows[:, 2], s=1 + 8 * rows[:, 3], color=colour, alpha=0.25, lw=0)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
