"""Reading a file someone else may have put there (a config, a model, its sidecar): bounded.

``read_regular``: regular files only, at most ``limit`` bytes, opened without
blocking; ``deeper_than``: whether what was parsed out of one nests too deep to hand on. A FIFO as the config hung the box's start and, on SIGHUP, its main thread; a
symlink to /dev/zero took it from 62 MB to 2.5 GB in 4 s (issue #27).
"""
from __future__ import annotations

import os
import stat

from .errors import ImpsError
from .ranges import shorten


def read_regular(path, limit: int, what: str, error=ImpsError) -> bytes | None:
    """A regular file's bytes, at most ``limit`` of them; None if it does not exist; ``error`` otherwise.

    Opened without blocking (a FIFO would hang the box) and checked by the descriptor it
    reads, so a symlink to /dev/zero or a file swapped after a check is refused, not read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except ValueError:       # a NUL in the path
        raise error(f"{what} {shorten(str(path), repr)}: the path holds a NUL byte") from None
    except OSError as exc:
        raise error(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file (a FIFO, device or socket)"
            raise error(f"{what} {path}: {kind}")
        if st.st_size > limit:
            raise error(f"{what} {path}: {st.st_size} bytes, more than the {limit} this box reads")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise error(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(f"{what} {path}: more than the {limit} bytes this box reads (still growing?)")
    return data


def deeper_than(value, limit: int) -> bool:
    """Whether dicts and lists in ``value`` nest more than ``limit`` deep (found without recursion:
    the data may be thousands deep, and everything that walks it later recurses)."""
    todo = [(value, 0)]
    while todo:
        node, depth = todo.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            todo.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            todo.extend((v, depth + 1) for v in node)
    return False
