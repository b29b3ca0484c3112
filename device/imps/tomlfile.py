"""Read a TOML file, or say in one line why not (the box's config and IMPSY's config.toml).

Bounded, because a config file is input: a regular file only (a FIFO hung the box,
/dev/zero filled its memory), at most MAX_CONFIG_BYTES, at most MAX_DOTS dots (tomllib
takes quadratic time in the parts of one dotted key: 100,000 parts took 11.7 s), nesting
at most MAX_DEPTH tables and arrays deep (tomllib recurses: 100,000 ``[`` was a
RecursionError and a 3,000-line traceback). Issue #27.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .errors import ConfigError
from .ranges import shorten
from .readfile import deeper_than, read_regular

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the Pi runs 3.11
    import tomli as tomllib

MAX_CONFIG_BYTES = 256 * 1024     # box.example.toml, every key documented, is 9 KB
MAX_DOTS = 4096                   # box.example.toml has about 200
MAX_DEPTH = 16                    # the deepest real table is [[midi.input]] map = [[...]]: 5


def read_toml(path: Path) -> dict:
    raw = read_regular(path, MAX_CONFIG_BYTES, "config file", ConfigError)
    if raw is None:
        raise ConfigError(f"config file {path} does not exist")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    dots = text.count(".")
    if dots > MAX_DOTS:
        raise ConfigError(f"config file {path} is not a box config: {dots} dots (at most {MAX_DOTS})")
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(f"config file {path} is not valid TOML for the box: nested deeper than "
                          f"{MAX_DEPTH} tables or arrays") from None
    except ValueError as exc:  # TOMLDecodeError, an integer of over 4300 digits
        raise ConfigError(f"config file {path} is not valid TOML: {shorten(exc, limit=200)}") from None
    if deeper_than(data, MAX_DEPTH):
        raise ConfigError(f"config file {path} is not valid TOML for the box: nested deeper than "
                          f"{MAX_DEPTH} tables or arrays")
    return data

