"""The one spec grammar shared by chunking, latency and fault strings.

A term is ``name``, ``name:N`` or ``name:k=v,k=v``; terms compose with ``+``
(``deltas:adversarial+bytes:3``, ``tokens:rate=50+jitter:sd=5``). Faults add a position:
``kind@pos=N[,k=v]`` (``disconnect@event=5``, ``stall@event=3,ms=2000``, ``http:529@start``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from streambench.errors import SpecError

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class Term:
    """One parsed ``name[:arg|:k=v,...]`` term; ``spec`` is the whole string, for messages."""

    spec: str
    name: str
    arg: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    def fail(self, why: str) -> SpecError:
        return SpecError(f"spec {self.spec!r}: {why}")

    def check_options(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.options) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise self.fail(f"unknown option {unknown[0]!r} for {self.name!r} (known: {known})")

    def number(self, key: str, default: float | None = None, *, minimum: float = 0) -> float:
        """A numeric option (``key=""`` reads the positional ``name:N`` argument)."""
        raw = self.arg if key == "" else self.options.get(key)
        label = f"{self.name}:N" if key == "" else f"{key}="
        if raw is None:
            if default is None:
                raise self.fail(f"{label} is required")
            return default
        try:
            # float() also reads non-ASCII digits ("١") and "inf": only ASCII numbers are specs.
            if not raw.isascii():
                raise ValueError
            value = float(raw)
        except ValueError:
            raise self.fail(f"{label} must be a number, got {raw!r}") from None
        if not minimum <= value <= NUMBER_LIMIT:
            raise self.fail(
                f"{label} must be a finite number from {minimum:g} to {NUMBER_LIMIT:g}, got {raw!r}"
            )
        return value

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0) -> int:
        value = self.number(key, None if default is None else float(default), minimum=minimum)
        if value != int(value):
            raise self.fail(f"{key or self.name + ':N'} must be an integer, got {value:g}")
        return int(value)


NUMBER_LIMIT = 1e9  # above this a spec number (ms, bytes, counts) is a typo and overflows


def parse_offsets(term: Term, raw: str, sep: str) -> tuple[int, ...]:
    """Strictly increasing offsets >= 1 written ``N<sep>N<sep>...`` (``cuts:3,9``, ``at=3/9``)."""
    offsets: list[int] = []
    for item in raw.split(sep):
        item = item.strip()
        if not (item.isascii() and item.isdigit()) or int(item) < 1:
            raise term.fail(f"offset {item!r} is not an integer >= 1")
        if offsets and int(item) <= offsets[-1]:
            raise term.fail(f"offsets must increase: {item} after {offsets[-1]}")
        offsets.append(int(item))
    return tuple(offsets)


def parse_term(text: str, spec: str) -> Term:
    """Parse one term; ``spec`` is the full user string quoted in errors."""
    text = text.strip()
    name, sep, rest = text.partition(":")
    if not _NAME.match(name):
        raise SpecError(f"spec {spec!r}: expected name, name:N or name:k=v,... got {text!r}")
    if not sep:
        return Term(spec, name)
    if not rest:
        raise SpecError(f"spec {spec!r}: nothing after {name + ':'!r}")
    if "=" not in rest:
        return Term(spec, name, arg=rest)
    return Term(spec, name, options=parse_options(rest, spec))


def parse_options(text: str, spec: str) -> dict[str, str]:
    """``k=v,k=v`` (the options part of a term, or of a SUT spec after its target)."""
    options: dict[str, str] = {}
    for item in text.split(","):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise SpecError(f"spec {spec!r}: option {item!r} is not key=value")
        if key in options:
            raise SpecError(f"spec {spec!r}: option {key!r} given twice")
        options[key] = value
    return options


def parse_terms(spec: str) -> list[Term]:
    """Split a composed spec on ``+`` and parse each term."""
    if not spec or not spec.strip():
        raise SpecError(f"spec {spec!r}: empty")
    return [parse_term(part, spec) for part in spec.split("+")]
