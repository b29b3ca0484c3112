"""multipart/form-data, read strictly from a body whose size was bounded before it was read.

The page's uploads are a few named parts (a model and its sidecar, a backup).
Anything unexpected is a MultipartError naming what: no boundary, a body that
does not start with the boundary or never closes it, a part without a name,
a name twice, more than MAX_PARTS parts, headers over MAX_HEADER bytes.
"""
from __future__ import annotations

import re

from ..errors import ConfigError

MAX_PARTS = 8
MAX_HEADER = 1024
_BOUNDARY = re.compile(r'boundary="?([0-9A-Za-z\'()+_,./:=? -]{1,70})"?(?:;|$)')
_DISPOSITION = re.compile(r'^form-data(?P<params>(?:;\s*[a-z]+="[^"\r\n]*")*)\s*$', re.I)
_PARAM = re.compile(r';\s*([a-z]+)="([^"\r\n]*)"', re.I)


class MultipartError(ConfigError):
    """A multipart body that is not what the page asked for."""


def boundary_of(content_type: str) -> bytes:
    kind, _, params = (content_type or "").partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise MultipartError(f"expected multipart/form-data, got {kind.strip()[:40]!r}")
    m = _BOUNDARY.search(params.strip())
    if not m or m.group(1).endswith(" "):
        raise MultipartError("multipart/form-data without a valid boundary")
    return m.group(1).encode()


def parse(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """{field name: (file name or None, content)}."""
    delimiter = b"--" + boundary_of(content_type)
    if not body.startswith(delimiter + b"\r\n"):
        raise MultipartError("the body does not start with its boundary")
    end = body.rfind(b"\r\n" + delimiter + b"--")
    if end < 0 or body[end + len(delimiter) + 4:].strip(b"\r\n"):
        raise MultipartError("the body never closes its boundary (truncated?)")
    chunks = body[len(delimiter) + 2:end].split(b"\r\n" + delimiter + b"\r\n")
    if len(chunks) > MAX_PARTS:
        raise MultipartError(f"{len(chunks)} parts, at most {MAX_PARTS}")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for chunk in chunks:
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep or len(head) > MAX_HEADER:
            raise MultipartError("a part without its blank line after the headers, or headers too long")
        name = filename = None
        for raw in head.split(b"\r\n"):
            key, colon, value = raw.decode("utf-8", "replace").partition(":")
            if not colon:
                raise MultipartError(f"a part header without a colon: {raw[:40]!r}")
            if key.strip().lower() == "content-disposition":
                m = _DISPOSITION.match(value.strip())
                if not m:
                    raise MultipartError(f"a Content-Disposition that is not form-data: {value.strip()[:60]!r}")
                params = dict((k.lower(), v) for k, v in _PARAM.findall(m.group("params")))
                name, filename = params.get("name"), params.get("filename")
        if not name:
            raise MultipartError("a part without a form-data name")
        if name in fields:
            raise MultipartError(f"the part {name!r:.40} twice")
        fields[name] = (filename, content)
    return fields
