"""The model the box plays: the configured one, or the reason it cannot be.

A model that cannot be used never stops the box: :func:`load_or_explain` gives
the reason instead, and the box keeps logging the performer in user-only mode
rather than crash-looping.
"""
from __future__ import annotations

from .. import ranges
from ..errors import ConfigError, ImpsError, ModelError
from ..model.runtime import MDRNN


def load_model(config) -> MDRNN:
    """The configured model; a sidecar's temperatures are held to the config's ranges."""
    m = config.model
    model = MDRNN(m.resolved_path(), dimension=config.engine.dimension, runtime=m.runtime, threads=m.threads,
                  seed=m.seed, pi_temperature=m.pi_temperature, sigma_temperature=m.sigma_temperature)
    for key in ("pi_temperature", "sigma_temperature"):  # a sidecar may recommend anything: same ranges
        try:
            ranges.check("model", key, getattr(model, key), f"{model.path.name}: {key}")
        except ConfigError as exc:
            raise ModelError(f"{exc} (set [model] {key} to override the sidecar)") from None
    return model


def load_or_explain(config) -> tuple[MDRNN | None, str | None]:
    """(model, None), or (None, one line saying why not)."""
    try:
        return load_model(config), None
    except Exception as exc:  # ModelError, RuntimeMissingError; anything else is a bug, but not a dead box
        return None, (str(exc) if isinstance(exc, ImpsError) else f"model {config.model.resolved_path()}: {exc!r}")
