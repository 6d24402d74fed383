"""The one spec grammar shared by chunking, latency and fault strings.

A term is ``name``, ``name:N`` or ``name:k=v,k=v``; terms compose with ``+``
(``deltas:adversarial+bytes:3``, ``tokens:rate=50+jitter:sd=5``). Faults may add a placement,
itself a term spelled ``pos=N[,k=v]`` or ``pos[,k=v]`` after ``@`` (``disconnect@event=5``,
``stall@event=3,ms=2000``, ``http:529@start``, ``stop:max_tokens@char=120``); faults compose
with ``;`` (``reformat:compact;pings:3``).

Every placement also takes two options of its own (:data:`PLACEMENT_OPTIONS`): ``call=N``
aims the fault at the case's N-th upstream recording (1-based; default 1) and ``call=served``
at the one that serves the case without faults (the second of a failover case whose first
answers 529); ``else=skip`` leaves a case out of the fault's runs when the position does not
exist on that upstream (past the end of its stream, or an HTTP error with no stream) instead
of failing (``disconnect@text=20,call=served,else=skip``).
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


# Placement options every fault takes (see the module docstring).
PLACEMENT_OPTIONS = ("call", "else")
SERVED_CALL = "served"


@dataclass(frozen=True)
class Aim:
    """Which upstream a placed fault hits (``call``: 1-based, or 0 for ``served``) and whether
    a case where its position does not exist is skipped (``else=skip``) rather than an error."""

    call: int = 1
    skip_unfit: bool = False


def parse_aim(where: Term) -> Aim:
    """The ``call=`` / ``else=`` options of a placement term."""
    raw = where.options.get("call", "1")
    if raw == SERVED_CALL:
        call = 0
    else:
        call = Term(where.spec, "call", options={"call": raw}).integer("call", minimum=1)
    otherwise = where.options.get("else")
    if otherwise not in (None, "skip"):
        raise where.fail(f"else= takes 'skip', got {otherwise!r}")
    return Aim(call, otherwise == "skip")


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
    """``k=v,k=v`` as a dict, in order; ``spec`` is the full user string quoted in errors."""
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


def parse_placed(spec: str) -> tuple[Term, Term | None]:
    """A fault: its term and, after ``@``, its placement as a term whose name is the position
    (``event=5,ms=2000`` -> name ``event``, arg ``5``, options ``{ms: 2000}``; ``start`` ->
    name ``start``)."""
    head, at_sign, where = spec.strip().partition("@")
    term = parse_term(head, spec)
    if not at_sign:
        return term, None
    position, _, rest = where.partition(",")
    key, eq, value = position.partition("=")
    key, value = key.strip(), value.strip()
    if not _NAME.match(key) or (eq and not value):
        raise SpecError(f"spec {spec!r}: expected a position (pos=N or start) after '@'")
    options = parse_options(rest, spec) if rest.strip() else {}
    return term, Term(spec, key, arg=value if eq else None, options=options)


def split_composed(spec: str, separator: str = ";") -> list[str]:
    """The parts of a composed fault spec (``a;b``); empty parts are dropped."""
    return [part.strip() for part in spec.split(separator) if part.strip()]


def parse_terms(spec: str) -> list[Term]:
    """Split a composed spec on ``+`` and parse each term."""
    if not spec or not spec.strip():
        raise SpecError(f"spec {spec!r}: empty")
    return [parse_term(part, spec) for part in spec.split("+")]
