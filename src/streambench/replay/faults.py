"""Faults: what goes wrong, where; the one fault vocabulary (:data:`FAULTS`).

Transport faults break the delivery: ``http:STATUS@start`` answers with the provider's error
response instead of the stream; the others act at a position of the delivered stream:
``event=N`` (0-based index of the SSE event, after any content re-split), ``bytes=N``
(delivered bytes), ``text=N`` (content characters) or ``delta=N`` (after N content deltas).

Content faults change what the model said (:mod:`streambench.replay.content`): the answer is
decoded from the recording, mutated, and re-encoded in the recording's own provider format.
Error bodies and events come from each API's module (:mod:`streambench.providers.registry`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from streambench.errors import SpecError
from streambench.providers import registry
from streambench.replay.specs import PLACEMENT_OPTIONS, Aim, Term, parse_aim, parse_placed
from streambench.sse import SSEEvent


@dataclass(frozen=True)
class FaultKind:
    """One entry of the vocabulary: where it may be placed, what it takes.

    ``args``: the words allowed after ``name:`` (``("N",)`` an integer count, ``("STATUS",)``
    an HTTP status, ``()`` none); ``positions``: what may follow ``@`` (``()`` none)."""

    name: str
    summary: str
    args: tuple[str, ...] = ()
    positions: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    content: bool = False
    example: str = ""


FAULTS: dict[str, FaultKind] = {
    kind.name: kind
    for kind in (
        FaultKind("http", "the provider's HTTP error response instead of the stream",
                  ("STATUS",), ("start",), ("retry_after",), example="http:529@start"),
        FaultKind("disconnect", "the connection drops there",
                  positions=("event", "bytes", "text", "delta"), example="disconnect@event=5"),
        FaultKind("error-event", "the provider's mid-stream error event, then the end",
                  positions=("event", "delta"), example="error-event@event=4"),
        FaultKind("stall", "the stream pauses before that event", positions=("event",),
                  options=("ms",), example="stall@event=3,ms=2000"),
        FaultKind("truncate", "the stream ends cleanly before that event",
                  positions=("event",), example="truncate@event=6"),
        FaultKind("garbage", "a malformed copy of that event before it", positions=("event",),
                  example="garbage@event=2"),
        FaultKind("duplicate", "that event twice", positions=("event",),
                  example="duplicate@event=2"),
        FaultKind("stop", "the answer ends there with the provider's max-tokens stop reason",
                  ("max_tokens",), ("char", "text"), content=True,
                  example="stop:max_tokens@char=120"),
        FaultKind("reformat", "the structured part's JSON re-serialised with other whitespace",
                  ("compact", "spaced", "newlines"), content=True, example="reformat:compact"),
        FaultKind("escape", "non-ASCII in the structured part's JSON strings escaped / raw",
                  ("ascii", "raw"), content=True, example="escape:ascii"),
        FaultKind("tool", "the second tool call reuses the first one's id (duplicate-id), or "
                  "the calls' argument deltas interleave by index (split-args)",
                  ("duplicate-id", "split-args"), content=True, example="tool:duplicate-id"),
        FaultKind("blocks", "the answer's blocks reordered: thinking after text, text before "
                  "tool use", ("reorder",), content=True, example="blocks:reorder"),
        FaultKind("refusal", "the provider's refusal instead of the answer", content=True,
                  example="refusal"),
        FaultKind("empty-edits", "the structured part's edits array (a key ending in edits) empty",
                  content=True, example="empty-edits"),
        FaultKind("bad-json", "one character of the structured part made invalid JSON",
                  positions=("char",), content=True, example="bad-json@char=10"),
        FaultKind("pings", "N keep-alive events sprinkled between the deltas (seeded)",
                  ("N",), content=True, example="pings:3"),
        FaultKind("empty-deltas", "N empty content deltas sprinkled between the deltas (seeded)",
                  ("N",), content=True, example="empty-deltas:3"),
    )
}  # fmt: skip
FAULT_KINDS = tuple(FAULTS)
TRANSPORT_FAULT_KINDS = tuple(name for name, kind in FAULTS.items() if not kind.content)
CONTENT_FAULT_KINDS = tuple(name for name, kind in FAULTS.items() if kind.content)
# The fake provider's short spellings (x-fake-fail), kept as documented aliases.
ALIASES = {"error": "error-event", "drop": "disconnect"}


@dataclass(frozen=True)
class Fault:
    """One fault. ``at`` is start, event, bytes, text, delta, char (or "" for content faults
    that apply to the whole answer); ``pos`` the index there, ``fraction`` a ``text=P%``
    position; ``arg`` the word after ``name:`` (reformat style, escape mode ...), ``count``
    its number (pings:N)."""

    spec: str
    kind: str
    at: str = ""
    pos: int = 0
    status: int = 0
    stall_ms: float = 0.0
    retry_after_s: float | None = None
    arg: str | None = None
    count: int = 0
    fraction: float | None = None
    # which upstream it hits; skip a case where the position does not exist
    aim: Aim = field(default_factory=Aim)

    @property
    def content(self) -> bool:
        """A content fault (changes what the model said) rather than a transport one."""
        return FAULTS[self.kind].content

    def fail(self, why: str) -> SpecError:
        return SpecError(f"fault {self.spec!r}: {why}")


def parse_fault(spec: str) -> Fault:
    """One fault of :data:`FAULTS`: ``kind[:arg]`` then, where it takes one,
    ``@pos=N[,k=v]``. Examples: ``disconnect@event=5``, ``http:529@start,retry_after=2``,
    ``stop:max_tokens@text=50%``, ``reformat:compact``, ``pings:3``. The fake provider's
    ``529`` / ``error@N`` / ``drop@N`` are read as ``http:529@start`` /
    ``error-event@delta=N`` / ``disconnect@delta=N``."""
    spec = _expand_alias(spec.strip())
    term, where = parse_placed(spec)
    kind = FAULTS.get(term.name)
    if kind is None:
        raise SpecError(f"fault {spec!r}: unknown fault {term.name!r} (known: {', '.join(FAULTS)})")
    fault = Fault(spec, kind.name)
    if kind.positions and where is None:
        raise fault.fail(f"{kind.name} needs a position: {kind.example}")
    if not kind.positions and where is not None:
        raise fault.fail(f"{kind.name} takes no position ('@'): {kind.example}")
    if term.options:
        raise fault.fail(f"{kind.name} takes no options before '@': {kind.example}")
    fault = _with_arg(fault, kind, term)
    if where is None:
        return fault
    if where.name not in kind.positions:
        allowed = " | ".join(p if p == "start" else f"{p}=N" for p in kind.positions)
        raise fault.fail(f"position must be {allowed}")
    known = (*kind.options, *PLACEMENT_OPTIONS)
    unknown = sorted(set(where.options) - set(known))
    if unknown:
        raise fault.fail(f"unknown option {unknown[0]!r} (known: {', '.join(known)})")
    return replace(_placed(fault, where), aim=parse_aim(where))


def _expand_alias(spec: str) -> str:
    if spec.isdigit():
        return f"http:{spec}@start"
    head, at_sign, where = spec.partition("@")
    if head in ALIASES and at_sign and where.isdigit():
        return f"{ALIASES[head]}@delta={where}"
    return spec


def _with_arg(fault: Fault, kind: FaultKind, term: Term) -> Fault:
    if not kind.args:
        if term.arg is not None:
            raise fault.fail(f"{kind.name!r} takes no argument before '@'")
        return fault
    if term.arg is None:
        raise fault.fail(f"use {kind.example}")
    if kind.args == ("STATUS",):
        status = term.integer("", minimum=100)
        if not 400 <= status <= 599:
            raise fault.fail("use http:STATUS@start with a 4xx/5xx status")
        return Fault(fault.spec, fault.kind, status=status)
    if kind.args == ("N",):
        return Fault(fault.spec, fault.kind, count=term.integer("", minimum=1), arg=term.arg)
    if term.arg not in kind.args:
        raise fault.fail(f"{kind.name}:{term.arg} is unknown (known: {', '.join(kind.args)})")
    return Fault(fault.spec, fault.kind, arg=term.arg)


def _placed(fault: Fault, where: Term) -> Fault:
    common = {
        "spec": fault.spec,
        "kind": fault.kind,
        "status": fault.status,
        "arg": fault.arg,
        "count": fault.count,
    }
    if where.name == "start":
        if where.arg is not None:
            raise fault.fail("use http:STATUS@start")
        retry = where.number("retry_after") if "retry_after" in where.options else None
        return Fault(**common, at="start", retry_after_s=retry)
    if where.arg is None:
        raise fault.fail(f"position must be {where.name}=N")
    if where.name == "text" and where.arg.endswith("%") and fault.kind == "stop":
        percent = Term(where.spec, "text=P%", arg=where.arg[:-1]).number("", minimum=0)
        if percent > 100:
            raise fault.fail("text=P% takes a percentage from 0 to 100")
        return Fault(**common, at="text", fraction=percent / 100)
    pos = Term(where.spec, where.name, arg=where.arg).integer("", minimum=0)
    stall_ms = 0.0
    if fault.kind == "stall":
        if "ms" not in where.options:
            raise fault.fail("stall needs ms=M (stall@event=N,ms=M)")
        stall_ms = where.number("ms", minimum=0)
    return Fault(**common, at=where.name, pos=pos, stall_ms=stall_ms)


# ----------------------------------------------------------------- provider error responses


def http_error(api: str, status: int, retry_after_s: float | None) -> tuple[dict[str, str], bytes]:
    """Headers and JSON body the provider of ``api`` answers with for ``status``."""
    headers, body = registry.lookup(api).http_error(status, retry_after_s)
    if retry_after_s is None and status == 429:
        retry_after_s = 1
    if retry_after_s is not None:
        headers["retry-after"] = f"{retry_after_s:g}"
    return headers, json.dumps(body, separators=(",", ":")).encode()


def error_event(api: str, sequence_number: int = 0) -> SSEEvent:
    """The provider's own mid-stream error event (after which it closes the stream)."""
    return registry.lookup(api).error_event(sequence_number)
