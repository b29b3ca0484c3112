"""A port on 127.0.0.1 that nobody holds now: for the soak's box, the benchmarks and the tests."""
from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A free UDP port (``socket.SOCK_STREAM``: TCP) on 127.0.0.1. Free when asked: bind it soon."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
