"""Settings read from the box's TOML: typed structs (msgspec), and one home for refusing bad input.

A settings class is a msgspec Struct: its fields, types and defaults document
its TOML table. ``decode`` reads parsed TOML into one, and is the one place
that turns what does not fit into an error naming the table, the key, the
value and what was expected:

- an unknown key (every settings class forbids unknown fields);
- a wrong type (msgspec checks each field, list element and nested table);
- a number out of range: a ``Section`` checks each of its fields against
  ``ranges.RANGES[(section, key)]`` (the one home of every range, shared with
  the OSC control port), in ``__post_init__``, so a struct built in code is
  checked too;
- whatever a class's own ``__post_init__`` refuses (a choice, a rule between
  keys), raised as ``ConfigError("key = value: what was expected")``.

TOML has no null: ``false`` stands for "none" where a key may be None
(``shutdown_button = false``: not fitted).
"""
from __future__ import annotations

import collections.abc
import functools
import re
import typing
from typing import ClassVar, Union

import msgspec

from . import ranges
from .errors import ConfigError


class Table(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A TOML table as a typed struct (read with ``decode``)."""


class Section(Table):
    """A ``[section]`` of the box's config: every number in ``ranges.RANGES[(section, key)]``."""
    section: ClassVar[str] = ""

    def __post_init__(self):
        for key in self.__struct_fields__:
            value = getattr(self, key)
            ranges.check(self.section, key, value, key)
            no_nul(key, value)


def no_nul(key: str, value) -> None:
    """ConfigError for a string (or a list's string) holding a NUL byte: no path or name may
    (a NUL in ``[log] directory`` was a traceback at start, and accepted by SIGHUP)."""
    for v in value if isinstance(value, (list, tuple)) else (value,):
        if isinstance(v, str) and "\0" in v:
            raise ConfigError(f"{key} = {ranges.shorten(v, repr)}: holds a NUL byte")


def decode(cls, data: dict, source: str = ""):
    """``data`` (parsed TOML) as ``cls``, or a ConfigError that names table, key, value and expectation.

    A Section decoded alone names its keys ``[section] key``, as in the file.
    """
    data = _false_as_none(data, cls)
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        message = _explain(exc, data, cls)
    raise ConfigError(f"{source}: {message}" if source else message)


def keys(cls) -> dict:
    """{key: type} of a settings class, in the order of its fields."""
    return dict(_hints(cls))


def choice(key: str, value, allowed) -> None:
    """ConfigError unless ``value`` is one of ``allowed`` (a key with a fixed set of values)."""
    if value not in allowed:
        allowed = list(allowed)
        names = ", ".join(allowed[:-1]) + " or " + allowed[-1] if len(allowed) > 1 else allowed[0]
        raise ConfigError(f"{key} = {ranges.shorten(value, repr)}: expected {names}")


def describe(tp) -> str:
    """A type hint in words: ``float``, ``str or a list of str``, ``int or false (none)``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        options = [describe(a) for a in args if a is not type(None)]
        return " or ".join(options + (["false (none)"] if type(None) in args else []))
    if origin in (list, tuple, collections.abc.Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"[{', '.join(describe(a) for a in args)}]"
        if args and _is_struct(args[0]):
            return "a list of tables"
        item = describe(args[0]) if args else "values"
        return f"a list of ({item})" if " or " in item else f"a list of {item}"
    if _is_struct(tp):
        return "a table"
    return getattr(tp, "__name__", str(tp))


# -- reading msgspec's error ----------------------------------------------------------------
# A ValidationError says what and where ("Expected `float`, got `str` - at `$.engine.time_scale`");
# the value is read back from the data along that path, so the message can show it.
_AT = re.compile(r"^(.*) - at `\$(.*)`$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _explain(exc: msgspec.ValidationError, data, cls) -> str:
    match = _AT.match(str(exc))
    what, path = (match.group(1), [k if k else int(i) for k, i in _SEGMENT.findall(match.group(2))]) \
        if match else (str(exc), [])
    # Walk the path: the innermost table on it, and the key in that table (if the error is a value's).
    root = [cls.section] if issubclass(cls, Section) else []
    names, table, struct = root, data, cls
    node, tp, key = data, cls, None
    for i, segment in enumerate(path):
        if isinstance(segment, str) and isinstance(node, dict) and _is_struct(tp):
            node, tp = node.get(segment), _hints(tp).get(segment)
        elif isinstance(segment, int) and isinstance(node, (list, tuple)) and segment < len(node):
            node, tp = node[segment], _item(tp)
        else:
            break
        if isinstance(node, dict) and _struct_in(tp) is not None:
            names, table, struct, tp, key = root + path[:i + 1], node, _struct_in(tp), _struct_in(tp), None
        elif key is None:
            key = segment
    where = _where(names, data, cls)
    sep = " " if len(names) == 1 else ": "
    prefix = f"{where}{sep}" if where else ""
    if key is not None:
        value = table.get(key)
        section = struct.section if issubclass(struct, Section) else ""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and section:
            try:
                ranges.check(section, key, value, key)
            except ConfigError as err:
                return f"{prefix}{err}"
        expected = _hints(struct).get(key)
        what = f"a [{key}] table" if not names and _struct_in(expected) else describe(expected)
        return f"{prefix}{key} = {ranges.shorten(value, repr)}: expected {what}"
    cause = exc.__cause__
    if isinstance(cause, (ConfigError, ValueError, TypeError)):
        return f"{prefix}{cause}"
    unknown = re.search(r"unknown field `(.*)`", what)
    if unknown:
        return f"{prefix}{unknown.group(1)}: unknown key, expected one of: {', '.join(_hints(struct))}"
    missing = re.search(r"missing required field `(.*)`", what)
    if missing:
        return f"{prefix}{missing.group(1)} is missing"
    return f"{prefix}{what}"


def _where(names: list, data, cls) -> str:
    """``[engine]``, ``[[midi.input]] 0 ('X-TOUCH') map[2]``: a table on the path, as the file names it."""
    if not names:
        return ""
    text = f"[{names[0]}]"
    node = data if issubclass(cls, Section) else data.get(names[0], {}) if isinstance(data, dict) else {}
    i = 1
    while i < len(names):
        key = names[i]
        node = node.get(key) if isinstance(node, dict) else None
        if i + 1 < len(names) and isinstance(names[i + 1], int):
            index = names[i + 1]
            node = node[index] if isinstance(node, (list, tuple)) and index < len(node) else None
            if i == 1:
                device = node.get("device") if isinstance(node, dict) else None
                text = f"[[{names[0]}.{key}]] {index}" + (f" ({device!r})" if isinstance(device, str) else "")
            else:
                text += f" {key}[{index}]"
            i += 2
        else:
            text += f" {key}"
            i += 1
    return text


# -- types ----------------------------------------------------------------------------------
def _is_struct(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict:
    hints = typing.get_type_hints(cls)
    return {name: hints[name] for name in cls.__struct_fields__}


def _arms(tp) -> tuple:
    return typing.get_args(tp) if typing.get_origin(tp) is Union else (tp,)


def _struct_in(tp):
    return next((a for a in _arms(tp) if _is_struct(a)), None)


def _item(tp):
    """The element type of a list type among ``tp``'s options (None: not a list)."""
    for arm in _arms(tp):
        origin, args = typing.get_origin(arm), typing.get_args(arm)
        if origin in (list, tuple, collections.abc.Sequence) and args:
            if origin is tuple and args[-1] is not Ellipsis:
                return Union[args]   # a fixed-length tuple: any of its element types
            return args[0]
    return None


def _false_as_none(value, tp):
    """TOML's ``false`` as None wherever ``tp`` allows None, through tables and lists."""
    if value is False and type(None) in _arms(tp):
        return None
    struct = _struct_in(tp)
    if struct is not None and isinstance(value, dict):
        hints = _hints(struct)
        return {k: _false_as_none(v, hints[k]) if k in hints else v for k, v in value.items()}
    item = _item(tp)
    if item is not None and isinstance(value, (list, tuple)):
        return [_false_as_none(v, item) for v in value]
    return value
