"""OSC address patterns (``/*_temperature``, ``/{mode,pause}``) matched without backtracking.

The grammar is OSC 1.0's: ``?`` one character but ``/``, ``*`` any run of
characters without ``/``, ``[abc]``, ``[a-z]`` and ``[!abc]`` one character of
(or not of) a set, ``{foo,bar}`` one of the strings. A pattern is compiled
once per message into a list of atoms and run against each route as a set of
positions held in one integer (bit i: "the first i characters of the route
are matched"), so each atom costs a few integer operations per route whatever
the pattern: no regex, no backtracking, no warnings. python-osc's Dispatcher
turned every ``*`` into a backtracking regex: one 28-byte packet of 18 stars
held the GIL for 40 s (issue #27).

Bounded as well: a pattern longer than MAX_PATTERN characters, or with more
than MAX_ALTERNATIVES strings in its braces, is refused (OscError) before any
matching. ``work`` counts the integer operations of the last match, so a test
can prove the worst case without timing it.
"""
from __future__ import annotations

from ..errors import OscError

PATTERN_CHARS = frozenset("*?[]{}")   # an address with any of these is an OSC address pattern
MAX_PATTERN = 128          # characters: our routes are under 20, so this is generous
MAX_ALTERNATIVES = 32      # strings inside all the braces of one pattern


def is_pattern(address: str) -> bool:
    return not PATTERN_CHARS.isdisjoint(address)


def _char_set(body: str) -> tuple[bool, list[tuple[str, str]]]:
    """``[...]``'s body as (negated, [(lo, hi)]): ``a-z`` is a range, a ``-`` at either end is itself."""
    negated = body.startswith("!")
    if negated:
        body = body[1:]
    spans, i = [], 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            spans.append((body[i], body[i + 2]))
            i += 3
        else:
            spans.append((body[i], body[i]))
            i += 1
    return negated, spans


def compile_pattern(pattern: str) -> list[tuple]:
    """The atoms of a pattern: ("lit", c), ("any",), ("star",), ("set", negated, spans), ("alt", strings)."""
    if len(pattern) > MAX_PATTERN:
        raise OscError(f"address pattern of {len(pattern)} characters (at most {MAX_PATTERN})")
    atoms: list[tuple] = []
    alternatives = 0
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if not atoms or atoms[-1] != ("star",):     # ** is *
                atoms.append(("star",))
        elif c == "?":
            atoms.append(("any",))
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise OscError(f"address pattern {pattern[:40]!r}: [ without ]")
            negated, spans = _char_set(pattern[i + 1:end])
            atoms.append(("set", negated, tuple(spans)))
            i = end
        elif c == "{":
            end = pattern.find("}", i + 1)
            if end < 0:
                raise OscError(f"address pattern {pattern[:40]!r}: {{ without }}")
            strings = tuple(pattern[i + 1:end].split(","))
            alternatives += len(strings)
            if alternatives > MAX_ALTERNATIVES:
                raise OscError(f"address pattern {pattern[:40]!r}: more than {MAX_ALTERNATIVES} {{}} alternatives")
            atoms.append(("alt", strings))
            i = end
        elif c in "]}":
            raise OscError(f"address pattern {pattern[:40]!r}: {c} without its opening bracket")
        else:
            atoms.append(("lit", c))
        i += 1
    return atoms


class Route:
    """One plain address, with what matching needs precomputed: a bit mask per character."""

    def __init__(self, address: str):
        self.address = address
        n = len(address)
        self.end = 1 << n
        self.masks: dict[str, int] = {}        # char -> bits of the positions holding it
        for i, ch in enumerate(address):
            self.masks[ch] = self.masks.get(ch, 0) | (1 << i)
        self.chars = frozenset(self.masks) - {"/"}
        self.not_slash = ((1 << n) - 1) & ~self.masks.get("/", 0)
        slashes = [i for i, ch in enumerate(address) if ch == "/"] + [n]
        # Runs of positions a * can sweep: from just after one slash up to (not past) the next one.
        self.runs = []
        start = 0
        for s in slashes:
            self.runs.append(((1 << (s + 1)) - (1 << start), start))
            start = s + 1

    def set_mask(self, members: frozenset) -> int:
        """The positions holding one of ``members`` (never a /)."""
        mask = 0
        for ch in members & self.chars:
            mask |= self.masks[ch]
        return mask


class Matcher:
    """Which routes a pattern matches, in a bounded number of integer operations."""

    def __init__(self, addresses):
        self.routes = [Route(a) for a in addresses]
        self.alphabet = frozenset().union(*(r.chars for r in self.routes))
        self.work = 0      # integer operations of the last match (the cost, counted)

    def match(self, pattern: str) -> list[str]:
        """The routes ``pattern`` matches (OscError if it breaks the grammar or the bounds)."""
        self.work = 0
        atoms = [self._members(a) if a[0] == "set" else a for a in compile_pattern(pattern)]
        return [r.address for r in self.routes if self._matches(atoms, r)]

    def _members(self, atom) -> tuple:
        """A set atom as ("set", the characters of the routes it matches): worked out once per pattern."""
        _, negated, spans = atom
        inside = {c for lo, hi in spans for c in self.alphabet if lo <= c <= hi}
        self.work += len(spans)
        return ("set", frozenset(self.alphabet - inside if negated else inside))

    def _matches(self, atoms, route: Route) -> bool:
        state = 1                   # bit 0: nothing matched yet
        work = 0
        for atom in atoms:
            kind = atom[0]
            if kind == "lit":
                state = (state & route.masks.get(atom[1], 0)) << 1
            elif kind == "any":
                state = (state & route.not_slash) << 1
            elif kind == "set":
                state = (state & route.set_mask(atom[1])) << 1
                work += len(route.chars)
            elif kind == "star":
                swept = 0
                for run, start in route.runs:
                    inside = state & run
                    if inside:
                        lowest = inside & -inside
                        swept |= run & ~(lowest - 1)
                    work += 1
                state |= swept
            else:   # alt: each string, at each position where it fits
                nxt = 0
                for s in atom[1]:
                    for i in range(len(route.address) - len(s) + 1):
                        if state >> i & 1 and route.address.startswith(s, i):
                            nxt |= 1 << (i + len(s))
                        work += 1
                state = nxt
            work += 1
            if not state:
                break
        self.work += work
        return bool(state & route.end)


__all__ = ["MAX_ALTERNATIVES", "MAX_PATTERN", "Matcher", "PATTERN_CHARS", "compile_pattern", "is_pattern"]
