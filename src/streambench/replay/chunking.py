"""Transport splits: where the delivered body is cut into chunks (``bytes:7``, ``utf8``, ...).

A split returns the end offset of every chunk; the last one is ``len(body)``. Splits that
only add cuts at special places (``utf8``, ``crlf``) also keep every event boundary, so a
stream without multi-byte characters or CRLF is delivered as ``events`` would deliver it.
``cuts:12,57,103`` is an explicit plan: chunks end exactly at those byte offsets of the
delivered body (offsets at or past its end are ignored), and nowhere else.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from streambench.replay.deltas import ContentSplit, parse_content_split
from streambench.replay.specs import Term, parse_offsets, parse_terms

TRANSPORT_SPLITS = ("bytes", "random", "events", "lines", "coalesce", "utf8", "crlf", "cuts")


@dataclass(frozen=True)
class TransportSplit:
    """How bytes are cut into chunks. ``size`` for ``bytes``; ``low``/``high`` for ``random``;
    ``at`` for ``cuts`` (the byte offsets)."""

    name: str = "events"
    size: int = 0
    low: int = 1
    high: int = 64
    at: tuple[int, ...] = ()

    @property
    def spec(self) -> str:
        """The spec string that parses back to this split."""
        if self.name == "bytes":
            return f"bytes:{self.size}"
        if self.name == "random":
            return f"random:min={self.low},max={self.high}"
        if self.name == "cuts":
            return "cuts:" + ",".join(map(str, self.at)) if self.at else "coalesce"
        return self.name

    def cuts(self, body: bytes, event_ends: list[int], rng: random.Random) -> list[int]:
        """End offsets of the chunks (strictly increasing, last is ``len(body)``)."""
        n = len(body)
        if n == 0:
            return []
        if self.name == "bytes":
            ends = list(range(self.size, n, self.size))
        elif self.name == "random":
            # randint(low, high)'s draws: randrange(low, high + 1) is low + _randbelow(width),
            # CPython's rejection sampling over getrandbits, inline here (randrange's checks
            # and calls cost more than the draw). Strictly increasing from low >= 1: no sort.
            ends = []
            low, width, bits = self.low, self.high + 1 - self.low, rng.getrandbits
            k = width.bit_length()
            at = 0
            while True:
                r = bits(k)
                while r >= width:
                    r = bits(k)
                at += low + r
                if at >= n:
                    break
                ends.append(at)
            ends.append(n)
            return ends
        elif self.name == "coalesce":
            ends = []
        elif self.name == "cuts":
            ends = list(self.at)
        elif self.name == "lines":
            ends = _line_ends(body)
        elif self.name == "utf8":
            # right after each lead byte of a multi-byte character: the decoder must carry it
            ends = [*event_ends, *(i + 1 for i, b in enumerate(body) if b >= 0xC0)]
        elif self.name == "crlf":
            ends = [*event_ends, *(i + 1 for i in range(n - 1) if body[i : i + 2] == b"\r\n")]
        else:
            ends = list(event_ends)
        return sorted({e for e in ends if 0 < e < n} | {n})


def _line_ends(body: bytes) -> list[int]:
    """After every LF, CRLF, or lone CR."""
    ends: list[int] = []
    i, n = 0, len(body)
    while i < n:
        b = body[i]
        if b == 0x0A or (b == 0x0D and (i + 1 == n or body[i + 1] != 0x0A)):
            ends.append(i + 1)
        i += 1
    return ends


@dataclass(frozen=True)
class Chunking:
    """A content re-split (optional) followed by a transport split."""

    spec: str = "events"
    content: ContentSplit | None = None
    transport: TransportSplit = TransportSplit()


def _transport_split(term: Term) -> TransportSplit:
    if term.name == "bytes":
        term.check_options(set())
        return TransportSplit("bytes", size=term.integer("", minimum=1))
    if term.name == "cuts":
        term.check_options(set())
        if term.arg is None:
            raise term.fail("use cuts:N,N,... (byte offsets where chunks end)")
        return TransportSplit("cuts", at=parse_offsets(term, term.arg, ","))
    if term.name == "random":
        if term.arg is not None:
            raise term.fail("use random:min=A,max=B")
        term.check_options({"min", "max"})
        low = term.integer("min", 1, minimum=1)
        high = term.integer("max", max(low, 64), minimum=1)
        if high < low:
            raise term.fail(f"max={high} is below min={low}")
        return TransportSplit("random", low=low, high=high)
    if term.arg is not None or term.options:
        raise term.fail(f"{term.name!r} takes no arguments")
    return TransportSplit(term.name)


def parse_chunking(spec: str) -> Chunking:
    """``events`` (default), ``bytes:N``, ``random:min=A,max=B``, ``lines``, ``coalesce``,
    ``utf8``, ``crlf``, ``cuts:N,N,...``, ``deltas:N|random|adversarial|at=N/N,...``, or
    ``deltas:...+<transport split>``."""
    content: ContentSplit | None = None
    transport: TransportSplit | None = None
    for term in parse_terms(spec):
        if term.name == "deltas":
            if content is not None:
                raise term.fail("only one deltas:... term")
            content = parse_content_split(term)
        elif term.name in TRANSPORT_SPLITS:
            if transport is not None:
                raise term.fail("only one transport split")
            transport = _transport_split(term)
        else:
            known = ", ".join((*TRANSPORT_SPLITS, "deltas"))
            raise term.fail(f"unknown chunking {term.name!r} (known: {known})")
    return Chunking(spec, content, transport or TransportSplit())
