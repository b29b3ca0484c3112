"""The output heads: what a model's ``params`` vector means. One home for both layouts.

``classic`` (the MDRNN head of IMPS and IMPSY; every model without a "head" in its
sidecar): one mixture of K diagonal Gaussians over the whole row, in scaled units,
laid out ``[mus (K*D) | sigmas (K*D) | pi logits (K)]`` (model_file.split_params).

``moves`` (issue 21): the row is drawn in parts, so a model can say which controls move.

- dt from its own mixture of K Gaussians over log(dt seconds): ``[mu (K) | sigma (K) |
  logits (K)]``, so a long pause does not move every control;
- then for each control i, a block ``[move logit | mu (K) | sigma (K) | logits (K)]``:
  the control moves with probability sigmoid(move logit), else it stays exactly where
  it is; when it moves, its new value is sigmoid(logit(current) + change), the change
  drawn from that mixture. Values stay inside (0, 1) without a clip, so none piles at
  the edges; a current value is held to [EDGE, 1 - EDGE] before its logit (a knob at
  0 or 1 has finite log-odds).

Both are in real units (log seconds, log-odds), not scaled by input_scale. Size:
3K + (D - 1)(1 + 3K).
"""
from __future__ import annotations

from ..errors import ModelError

HEADS = ("classic", "moves")
DEFAULT_HEAD = "classic"
#: A control's value is held to [EDGE, 1 - EDGE] before its log-odds: half a MIDI step.
EDGE = 0.5 / 127
#: A control "moved" between two rows (for training the move probability) if it changed by more than this.
MOVED = 1e-6


def params_size(head: str, dimension: int, mixtures: int) -> int:
    if head == "classic":
        return 2 * mixtures * dimension + mixtures
    if head == "moves":
        return 3 * mixtures + (dimension - 1) * (1 + 3 * mixtures)
    raise ModelError(f"unknown output head {head!r}, expected one of {', '.join(HEADS)}")


def mixtures_from_size(head: str, size: int, dimension: int) -> int:
    """Mixture count K from a params output's size, or a ModelError naming the head."""
    per = {"classic": 2 * dimension + 1, "moves": 3 + 3 * (dimension - 1)}.get(head)
    if per is None:
        raise ModelError(f"unknown output head {head!r}, expected one of {', '.join(HEADS)}")
    fixed = 0 if head == "classic" else dimension - 1
    k, rem = divmod(size - fixed, per)
    if rem or k < 1:
        raise ModelError(f"output size {size} does not fit the {head} head for D = {dimension} "
                         f"({'2*K*D + K' if head == 'classic' else '3K + (D-1)(1+3K)'})")
    return k


def check_head(head, source: str = "sidecar") -> str:
    if head not in HEADS:
        raise ModelError(f"{source}: head must be one of {', '.join(HEADS)}, got {head!r}")
    return head
