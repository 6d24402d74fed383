"""What the upstream delivered, in time: when the structured part was complete and when each
character of the user-visible text arrived. The yardsticks for changes_lag_ms and text lag.

In job_code/workflow modes the structured part comes one of two ways. Either the model's text
is a JSON object continued from a prefill the SUT chose (we try the known prefills of
:mod:`streambench.answer` and keep the one under which the content reads as that answer), or
the model calls a tool whose input carries it (Anthropic ``tool_use``, OpenAI ``tool_calls``,
several parallel calls kept apart), and the user-visible text is the plain text beside it.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from streambench.answer import (
    SHAPES,
    JsonObjectStream,
    JsonStreamError,
    MemberDone,
    MemberStart,
    ObjectEnd,
    StringDelta,
    known_prefills,
)
from streambench.providers.apis import ToolCallPiece, event_tool_calls, json_tool_calls
from streambench.replay.plan import ReplayPlan

ContentTimeline = Sequence[tuple[float, str, str]]  # (t_ms, kind, text) of the replay plan
ToolTimeline = Sequence[tuple[float, ToolCallPiece]]  # (t_ms, piece) of the replay plan


@dataclass
class UpstreamContent:
    """``text_times_ms[i]``: when the i-th user-visible text character arrived upstream;
    ``text``: those characters; ``tool``: the tool whose input carried the structured part."""

    structured_complete_ms: float | None = None
    text_times_ms: list[float] = field(default_factory=list)
    text: str = ""
    tool: str | None = None

    def shifted(self, offset_ms: float) -> UpstreamContent:
        """The same content on the SUT request's clock (the upstream call began at offset_ms)."""
        done = self.structured_complete_ms
        return UpstreamContent(
            None if done is None else done + offset_ms,
            [t + offset_ms for t in self.text_times_ms],
            self.text,
            self.tool,
        )


def _text_deltas(timeline: ContentTimeline) -> list[tuple[float, str]]:
    return [(t_ms, text) for t_ms, kind, text in timeline if kind == "text" and text]


# Readings kept by value (the pieces' texts and the mode): a transcript's deltas are the same
# text on every run that splits them alike, only their times move, and they are parsed once.
_CACHED_READINGS = 1024


@dataclass(frozen=True)
class _Reading:
    """How a sequence of pieces reads as the answer object, by piece index: the times are the
    run's (:meth:`content`), the parse is the same on every run delivering the same pieces."""

    text: str
    text_counts: tuple[int, ...]  # text characters each piece carried
    structured_at: int | None  # the piece the structured member (tool input: object) ended in
    ended: bool
    keys: frozenset[str]  # the object's top-level keys (and the prefill's answer keys)

    def content(self, times_ms: Sequence[float], tool: str | None = None) -> UpstreamContent:
        """The reading on a run whose i-th piece arrived at ``times_ms[i]``."""
        at = self.structured_at
        text_times_ms = [
            t for t, n in zip(times_ms, self.text_counts, strict=True) for _ in range(n)
        ]
        return UpstreamContent(None if at is None else times_ms[at], text_times_ms, self.text, tool)


def _read_object(
    texts: Sequence[str], mode: str, prefill: str = "", *, tool_input: bool = False
) -> _Reading:
    """The answer object ``texts`` continue from ``prefill``; JsonStreamError when it does not
    parse or repeats a member. A tool's input (``tool_input``) starts from nothing and keeps
    what parsed before a break; its structured member, else the whole object, ends in
    ``structured_at``."""
    shape = SHAPES[mode]
    stream = JsonObjectStream()
    counts = [0] * len(texts)
    parts: list[str] = []
    at: int | None = None
    ended = structured = False  # structured: its value arrived (even an empty list)
    keys: set[str] = {k for k in shape.keys if f'"{k}"' in prefill}
    try:
        stream.feed(prefill)
        for index, text in enumerate(texts):
            for event in stream.feed(text):
                if isinstance(event, MemberStart):
                    if event.key in keys and not tool_input:
                        raise JsonStreamError(f"member {event.key!r} repeats")
                    keys.add(event.key)
                elif isinstance(event, MemberDone) and event.key == shape.structured_key:
                    at, structured = index, True
                elif isinstance(event, StringDelta) and event.key == shape.text_key:
                    counts[index] += len(event.text)
                    parts.append(event.text)
                elif isinstance(event, ObjectEnd):
                    ended = True
                    if tool_input and not structured:
                        at = index
    except JsonStreamError:
        if not tool_input:
            raise
    return _Reading("".join(parts), tuple(counts), at, ended, frozenset(keys))


def _parse_answer(texts: Sequence[str], prefill: str, mode: str) -> _Reading | None:
    """Content under one prefill guess; None when the content is not the answer under it: it
    does not parse, it repeats a member (a text-first answer read as yaml-first), or none of
    its members is the answer's (a bare code edit ``{"action": ...}`` read as the object)."""
    try:
        reading = _read_object(texts, mode, prefill)
    except JsonStreamError:
        return None
    return reading if reading.keys & set(SHAPES[mode].keys) else None


def _plain(deltas: Sequence[tuple[float, str]]) -> UpstreamContent:
    return UpstreamContent(
        None, [t_ms for t_ms, text in deltas for _ in text], "".join(t for _, t in deltas)
    )


@functools.lru_cache(maxsize=_CACHED_READINGS)
def _json_answer(texts: tuple[str, ...], mode: str) -> _Reading | None:
    """The answer under the first prefill guess it ends under, else the first it parses under."""
    fallback: _Reading | None = None
    for prefill in known_prefills(mode):
        parsed = _parse_answer(texts, prefill, mode)
        if parsed is None:
            continue
        if parsed.ended:
            return parsed
        fallback = fallback or parsed
    return fallback


@dataclass
class ToolCallInput:
    """One tool call of a stream: its tool's name and its input's pieces, each with the time
    it was delivered."""

    name: str
    pieces: list[tuple[float, str]] = field(default_factory=list)

    @property
    def arguments(self) -> str:
        """The whole input JSON text."""
        return "".join(text for _, text in self.pieces)


def tool_calls(tools: ToolTimeline) -> list[ToolCallInput]:
    """The calls in order of their first piece; a piece without ``call`` is a call of its own."""
    calls: dict[object, ToolCallInput] = {}
    for t_ms, piece in tools:
        key: object = piece.call if piece.call is not None else object()
        call = calls.setdefault(key, ToolCallInput(piece.name or ""))
        if piece.name and not call.name:
            call.name = piece.name
        if piece.arguments:
            call.pieces.append((t_ms, piece.arguments))
    return list(calls.values())


@functools.lru_cache(maxsize=_CACHED_READINGS)
def _read_tool_input(texts: tuple[str, ...], mode: str) -> _Reading:
    """A tool call's input pieces: its top-level keys, and when its structured member (else
    the whole input) ended (a broken input never completed: no moment to measure from)."""
    return _read_object(texts, mode, tool_input=True)


def _tool_answer(
    deltas: Sequence[tuple[float, str]], tools: ToolTimeline, mode: str, tool: str | None
) -> UpstreamContent | None:
    """The structured part from the tool call that carries it (:func:`answer_call`)."""
    calls = tool_calls(tools)
    read = [_read_tool_input(tuple(text for _, text in call.pieces), mode) for call in calls]
    index = answer_call(
        [(call.name, r.keys) for call, r in zip(calls, read, strict=True)], mode, tool
    )
    if index is None:
        return None
    call, reading = calls[index], read[index]
    content = reading.content([t_ms for t_ms, _ in call.pieces], call.name)
    if SHAPES[mode].text_key not in reading.keys:  # the text is the plain text beside the call
        plain = _plain(deltas)
        content.text_times_ms, content.text = plain.text_times_ms, plain.text
    return content


def answer_call(
    calls: Sequence[tuple[str, Collection[str]]], mode: str, tool: str | None = None
) -> int | None:
    """Which of a stream's tool calls (each its tool's name and its input's top-level keys)
    carries the structured part: the case's ``tool`` when named, else the first call whose
    input has the mode's structured member, else the only call; None when none does."""
    if tool is not None:
        return next((i for i, (name, _) in enumerate(calls) if name == tool), None)
    key = SHAPES[mode].structured_key
    only = 0 if len(calls) == 1 else None
    return next((i for i, (_, keys) in enumerate(calls) if key in keys), only)


def analyse_upstream(
    timeline: ContentTimeline,
    mode: str,
    tools: ToolTimeline = (),
    tool: str | None = None,
) -> UpstreamContent:
    """Times on the upstream call's own clock (0 = the call began). ``tools``: the call's
    tool-call pieces; ``tool``: the name of the tool that carries the changes, if the case says."""
    deltas = _text_deltas(timeline)
    if mode not in SHAPES:
        return _plain(deltas)
    if tools:
        found = _tool_answer(deltas, tools, mode, tool)
        if found is not None:
            return found
    reading = _json_answer(tuple(text for _, text in deltas), mode)
    return reading.content([t_ms for t_ms, _ in deltas]) if reading else UpstreamContent()


def tool_timeline(plan: ReplayPlan) -> list[tuple[float, ToolCallPiece]]:
    """Every tool-call piece the plan delivers, with its delivery time."""
    if plan.json_payload is not None:
        return [(plan.duration_ms, piece) for piece in json_tool_calls(plan.api, plan.json_payload)]
    api = plan.api
    timed: list[tuple[float, ToolCallPiece]] = []
    for entry in plan.timeline:  # a loop: most events carry no piece, and this runs per run
        event = entry.frame.event
        pieces = event_tool_calls(api, event) if event is not None else ()
        if pieces:
            timed += [(entry.t_ms, piece) for piece in pieces]
    return timed


def analyse_plan(plan: ReplayPlan, mode: str, tool: str | None = None) -> UpstreamContent:
    """:func:`analyse_upstream` over everything one replay plan delivers."""
    tools = tool_timeline(plan) if mode in SHAPES else ()  # chat mode reads no tool calls
    return analyse_upstream(plan.content_timeline, mode, tools, tool)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def served_call(contents: Sequence[UpstreamContent], shown_text: str) -> int:
    """Which upstream call carried the answer the user saw: the one whose text agrees with
    ``shown_text`` longest (by content, not position); the latest call on a tie."""
    scores = [(_common_prefix(c.text, shown_text), i) for i, c in enumerate(contents)]
    return max(scores)[1] if scores else 0
