"""The interaction modes, in the order the mode button cycles through them."""
from __future__ import annotations

from enum import Enum

from .errors import ConfigError
from .ranges import shorten


class Mode(str, Enum):
    USER = "user"                    # log and pass the performer through; never predict
    CALL_RESPONSE = "call_response"  # the model continues when the performer stops
    LAYERED = "layered"              # each performer event gets one predicted companion
    DUET = "duet"                    # the model plays on; performer events steer its state

    @classmethod
    def parse(cls, value) -> "Mode":
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).strip().lower().replace("-", "_"))
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ConfigError(f"unknown mode {shorten(value, repr)}, expected one of: {names}") from None

    def next(self) -> "Mode":
        order = list(Mode)
        return order[(order.index(self) + 1) % len(order)]
