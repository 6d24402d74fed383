"""What the upstream delivered, in time: when the structured part was complete and when each
character of the user-visible text arrived. The yardsticks for changes_lag_ms and text lag.

In job_code/workflow modes the structured part comes one of two ways. Either the model's text
is a JSON object continued from a prefill the SUT chose (we try the known prefills of
:mod:`streambench.answer` and keep the one under which the content reads as that answer), or
the model calls a tool whose input carries it (Anthropic ``tool_use``, OpenAI ``tool_calls``,
several parallel calls kept apart), and the user-visible text is the plain text beside it.
"""

from __future__ import annotations

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


@dataclass
class _Parsed:
    content: UpstreamContent
    ended: bool
    # the structured member's value arrived in full (set even when it is an empty list)
    structured_seen: bool


def _parse_answer(deltas: Sequence[tuple[float, str]], prefill: str, mode: str) -> _Parsed | None:
    """Content under one prefill guess; None when the content is not the answer under it: it
    does not parse, it repeats a member (a text-first answer read as yaml-first), or none of
    its members is the answer's (a bare code edit ``{"action": ...}`` read as the object)."""
    shape = SHAPES[mode]
    stream = JsonObjectStream()
    content = UpstreamContent()
    parts: list[str] = []
    ended = structured = False
    seen: set[str] = set()
    try:
        stream.feed(prefill)
        seen.update(k for k in shape.keys if f'"{k}"' in prefill)
        for t_ms, text in deltas:
            for event in stream.feed(text):
                if isinstance(event, MemberStart):
                    if event.key in seen:
                        return None
                    seen.add(event.key)
                elif isinstance(event, MemberDone) and event.key == shape.structured_key:
                    content.structured_complete_ms = t_ms
                    structured = True
                elif isinstance(event, StringDelta) and event.key == shape.text_key:
                    content.text_times_ms.extend([t_ms] * len(event.text))
                    parts.append(event.text)
                elif isinstance(event, ObjectEnd):
                    ended = True
    except JsonStreamError:
        return None
    if not seen & set(shape.keys):
        return None
    content.text = "".join(parts)
    return _Parsed(content, ended, structured)


def _plain(deltas: Sequence[tuple[float, str]]) -> UpstreamContent:
    return UpstreamContent(
        None, [t_ms for t_ms, text in deltas for _ in text], "".join(t for _, t in deltas)
    )


def _json_answer(deltas: Sequence[tuple[float, str]], mode: str) -> UpstreamContent | None:
    fallback: UpstreamContent | None = None
    for prefill in known_prefills(mode):
        parsed = _parse_answer(deltas, prefill, mode)
        if parsed is None:
            continue
        if parsed.ended:
            return parsed.content
        fallback = fallback or parsed.content
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


def _read_tool_input(call: ToolCallInput, mode: str) -> tuple[set[str], _Parsed]:
    """The input's top-level keys, and when its structured member (else the whole input) ended."""
    shape = SHAPES[mode]
    stream = JsonObjectStream()
    content = UpstreamContent(tool=call.name)
    keys: set[str] = set()
    parts: list[str] = []
    ended = structured = False
    try:
        for t_ms, text in call.pieces:
            for event in stream.feed(text):
                if isinstance(event, MemberStart):
                    keys.add(event.key)
                elif isinstance(event, MemberDone) and event.key == shape.structured_key:
                    content.structured_complete_ms, structured = t_ms, True
                elif isinstance(event, StringDelta) and event.key == shape.text_key:
                    content.text_times_ms.extend([t_ms] * len(event.text))
                    parts.append(event.text)
                elif isinstance(event, ObjectEnd):
                    ended = True
                    if not structured:
                        content.structured_complete_ms = t_ms
    except JsonStreamError:
        pass  # a broken input never completed: no moment to measure from
    content.text = "".join(parts)
    return keys, _Parsed(content, ended, structured)


def _tool_answer(
    deltas: Sequence[tuple[float, str]], tools: ToolTimeline, mode: str, tool: str | None
) -> UpstreamContent | None:
    """The structured part from the tool call that carries it (:func:`answer_call`)."""
    read = [(call, *_read_tool_input(call, mode)) for call in tool_calls(tools)]
    index = answer_call([(call.name, keys) for call, keys, _ in read], mode, tool)
    if index is None:
        return None
    _, keys, parsed = read[index]
    content = parsed.content
    if SHAPES[mode].text_key not in keys:  # the text is the plain text beside the call
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
    return _json_answer(deltas, mode) or UpstreamContent()


def tool_timeline(plan: ReplayPlan) -> list[tuple[float, ToolCallPiece]]:
    """Every tool-call piece the plan delivers, with its delivery time."""
    if plan.json_payload is not None:
        return [(plan.duration_ms, piece) for piece in json_tool_calls(plan.api, plan.json_payload)]
    return [
        (entry.t_ms, piece)
        for entry in plan.timeline
        if entry.event is not None
        for piece in event_tool_calls(plan.api, entry.event)
    ]


def analyse_plan(plan: ReplayPlan, mode: str, tool: str | None = None) -> UpstreamContent:
    """:func:`analyse_upstream` over everything one replay plan delivers."""
    return analyse_upstream(plan.content_timeline, mode, tool_timeline(plan), tool)


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
