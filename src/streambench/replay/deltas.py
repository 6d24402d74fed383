"""Content re-splits: cut each content delta into smaller deltas, valid for its api.

A content delta is an event carrying exactly one piece of text, tool-input JSON or thinking
(anthropic ``content_block_delta``, an openai-chat chunk with one ``delta`` field, an
openai-responses ``*.delta`` event, a google chunk with one text part). Each becomes several
events of the same shape whose pieces concatenate to the original; every other event (ids,
usage, stop, pings) is kept byte for byte. Pieces never cross an original event, so envelope
fields stay with their event: openai-chat's role and tool-call id/name ride on the first
piece, finish_reason and usage on the last; google's finishReason on the last. An openai-chat
chunk carrying several parallel tool calls becomes one chunk per call first, each split alone.

``deltas:at=12/57/103`` is an explicit plan: cut the first content stream (a content block,
choice or tool call, numbered in order of first appearance) at those character offsets of
its whole content; ``at1=``, ``at2=``, ... cut the second, third, ... stream
(``deltas:at=4/9,at1=2``). Cuts that fall on an event boundary or past the end change nothing.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streambench.replay.frames import Frame, make_frame
from streambench.replay.specs import Term, parse_offsets
from streambench.sse import SSEEvent

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class ContentSplit:
    """``size``: at most N characters per delta; ``random``: seeded sizes in [low, high];
    ``adversarial``: cuts where incremental JSON/escape decoders break (see :func:`hostile_cuts`);
    ``at``: the listed cuts, ``at[k]`` for the k-th content stream.
    """

    mode: str
    size: int = 1
    low: int = 1
    high: int = 8
    at: tuple[tuple[int, ...], ...] = ()


_AT_KEY = re.compile(r"^at(\d*)$")


def _parse_at(term: Term) -> ContentSplit:
    slots: dict[int, tuple[int, ...]] = {}
    for key, raw in term.options.items():
        match = _AT_KEY.match(key)
        if match is None:
            raise term.fail(f"unknown option {key!r} for 'deltas' (use at=N/N, at1=N/N, ...)")
        slots[int(match.group(1) or 0)] = parse_offsets(term, raw, "/")
    return ContentSplit("at", at=tuple(slots.get(i, ()) for i in range(max(slots) + 1)))


def parse_content_split(term: Term) -> ContentSplit:
    """``deltas:N``, ``deltas:random[:min=A,max=B]``, ``deltas:adversarial`` or
    ``deltas:at=N/N[,at1=N/N...]``."""
    if term.arg in ("random", "adversarial"):
        return ContentSplit(term.arg)
    if term.arg is None and any(key.startswith("at") for key in term.options):
        return _parse_at(term)
    if term.arg is None and set(term.options) <= {"min", "max"} and term.options:
        low = term.integer("min", 1, minimum=1)
        high = term.integer("max", max(low, 8), minimum=1)
        if high < low:
            raise term.fail(f"max={high} is below min={low}")
        return ContentSplit("random", low=low, high=high)
    if term.arg is None:
        raise term.fail(
            "use deltas:N, deltas:random, deltas:min=A,max=B, deltas:adversarial or deltas:at=N/N"
        )
    term.check_options(set())
    return ContentSplit("size", size=term.integer("", minimum=1))


# ------------------------------------------------------------------------------ cut points

_UNICODE_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}")
_JSON_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


def hostile_cuts(text: str) -> set[int]:
    """Cut positions that break naive incremental decoders of JSON carried as text: before and
    right after every backslash, inside every ``\\uXXXX`` escape (so surrogate pairs split too),
    around every double quote, and inside every JSON key (``"code_|edits"|:``)."""
    cuts: set[int] = set()
    for i, ch in enumerate(text):
        if ch in '\\"':
            cuts.update((i, i + 1))
    for m in _UNICODE_ESCAPE.finditer(text):
        cuts.update((m.start() + 2, m.start() + 4))
    for m in _JSON_KEY.finditer(text):
        key_start, key_end = m.start(1), m.end(1)
        cuts.update((key_start + 1, (key_start + key_end) // 2, m.end() - 1))
    return {c for c in cuts if 0 < c < len(text)}


def _piece_lengths(split: ContentSplit, n: int, rng: random.Random) -> list[int]:
    if split.mode == "size":
        return [min(split.size, n - at) for at in range(0, n, split.size)]
    lengths: list[int] = []
    while n > 0:
        take = min(rng.randint(split.low, split.high), n)
        lengths.append(take)
        n -= take
    return lengths


# --------------------------------------------------------------------------- per-api shapes


@dataclass(frozen=True)
class _Delta:
    """Where the one content string of an event sits, and which stream it continues."""

    path: Path
    slot: tuple[Any, ...]


def _anthropic(obj: dict[str, Any]) -> _Delta | None:
    fields = {
        "text_delta": "text",
        "input_json_delta": "partial_json",
        "thinking_delta": "thinking",
    }
    delta = obj.get("delta")
    if obj.get("type") != "content_block_delta" or not isinstance(delta, dict):
        return None
    key = fields.get(str(delta.get("type")))
    if key is None:
        return None
    return _Delta(("delta", key), ("anthropic", obj.get("index")))


def _openai_chat(obj: dict[str, Any]) -> _Delta | None:
    choices = obj.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        return None
    delta = choices[0].get("delta")
    if not isinstance(delta, dict):
        return None
    found: list[_Delta] = []
    index = choices[0].get("index")
    for key in ("content", "reasoning_content", "reasoning"):
        if isinstance(delta.get(key), str) and delta[key]:
            found.append(_Delta(("choices", 0, "delta", key), ("chat", index, key)))
    calls = delta.get("tool_calls")
    if isinstance(calls, list) and calls:
        arguments = (calls[0].get("function") or {}).get("arguments")
        if len(calls) != 1 or not isinstance(arguments, str):
            return None
        if arguments:
            path: Path = ("choices", 0, "delta", "tool_calls", 0, "function", "arguments")
            found.append(_Delta(path, ("chat", index, "tool", calls[0].get("index"))))
    return found[0] if len(found) == 1 else None


_RESPONSES_DELTAS = {
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.mcp_call_arguments.delta",
    "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta",
}


def _openai_responses(obj: dict[str, Any]) -> _Delta | None:
    if obj.get("type") not in _RESPONSES_DELTAS or not isinstance(obj.get("delta"), str):
        return None
    slot = ("responses", obj.get("item_id"), obj.get("content_index"), obj.get("summary_index"))
    return _Delta(("delta",), slot)


def _google(obj: dict[str, Any]) -> _Delta | None:
    candidates = obj.get("candidates")
    if not isinstance(candidates, list) or len(candidates) != 1:
        return None
    parts = (candidates[0].get("content") or {}).get("parts")
    if not isinstance(parts, list) or len(parts) != 1 or not isinstance(parts[0], dict):
        return None
    if not isinstance(parts[0].get("text"), str) or set(parts[0]) - {"text", "thought"}:
        return None
    slot = ("google", candidates[0].get("index"), bool(parts[0].get("thought")))
    return _Delta(("candidates", 0, "content", "parts", 0, "text"), slot)


_LOCATORS: dict[str, Callable[[dict[str, Any]], _Delta | None]] = {
    "anthropic-messages": _anthropic,
    "openai-chat": _openai_chat,
    "openai-responses": _openai_responses,
    "google-generate": _google,
}


def _set(obj: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def _get(obj: Any, path: Path) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _shape_piece(api: str, obj: dict[str, Any], first: bool, last: bool) -> None:
    """Keep once-per-event envelope fields on the first (ids, names) or last (finish) piece."""
    if api == "openai-chat":
        choice = obj["choices"][0]
        if not first:
            choice["delta"].pop("role", None)
            for call in choice["delta"].get("tool_calls") or []:
                call.pop("id", None)
                call.pop("type", None)
                (call.get("function") or {}).pop("name", None)
            if "logprobs" in choice:
                choice["logprobs"] = None
        if not last:
            if "finish_reason" in choice:
                choice["finish_reason"] = None
            if obj.get("usage") is not None:
                obj["usage"] = None
    elif api == "google-generate" and not last:
        for key in ("finishReason", "finishMessage", "safetyRatings"):
            obj["candidates"][0].pop(key, None)
    elif api == "openai-responses" and not first and "logprobs" in obj:
        obj["logprobs"] = []


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _parallel_calls(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """An openai-chat chunk carrying several tool calls (parallel calls sent together), as one
    chunk per call: the role on the first, finish_reason and usage on the last."""
    choices = obj.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        return []
    delta = choices[0].get("delta")
    calls = delta.get("tool_calls") if isinstance(delta, dict) else None
    if not isinstance(calls, list) or len(calls) < 2 or set(delta) - {"role", "tool_calls"}:
        return []
    parts: list[dict[str, Any]] = []
    for i, call in enumerate(calls):
        part = copy.deepcopy(obj)
        part["choices"][0]["delta"]["tool_calls"] = [call]
        if i:
            part["choices"][0]["delta"].pop("role", None)
        if i < len(calls) - 1:
            part["choices"][0]["finish_reason"] = None
            if part.get("usage") is not None:
                part["usage"] = None
        parts.append(part)
    return parts


def _content_parts(api: str, frame: Frame) -> list[tuple[dict[str, Any], _Delta | None]] | None:
    """The frame's event as objects to split (several for parallel calls); None: keep as is."""
    locate = _LOCATORS.get(api)
    if locate is None or frame.event is None:
        return None
    try:
        obj = json.loads(frame.event.data)
    except ValueError:
        return None
    if not isinstance(obj, dict):
        return None
    where = locate(obj)
    if where is not None:
        return [(obj, where)]
    parts = _parallel_calls(obj) if api == "openai-chat" else []
    return [(part, locate(part)) for part in parts] or None


def resplit(
    api: str, frames: list[Frame], split: ContentSplit, rng: random.Random
) -> list[list[Frame]]:
    """One group of frames per input frame: the pieces of a content delta, or the frame as is."""
    parsed = [_content_parts(api, frame) for frame in frames]

    # adversarial cuts look at each slot's whole content, so patterns across deltas are cut too
    slot_cuts: dict[tuple[Any, ...], list[int]] = {}
    if split.mode in ("adversarial", "at"):
        texts: dict[tuple[Any, ...], list[str]] = {}
        for hits in parsed:
            for obj, where in hits or ():
                if where is not None:
                    texts.setdefault(where.slot, []).append(_get(obj, where.path))
        if split.mode == "adversarial":
            slot_cuts = {slot: sorted(hostile_cuts("".join(t))) for slot, t in texts.items()}
        else:  # dicts keep insertion order: slots are numbered by first appearance
            slot_cuts = {
                slot: list(split.at[n]) if n < len(split.at) else [] for n, slot in enumerate(texts)
            }
    slot_offset: dict[tuple[Any, ...], int] = {}

    groups: list[list[Frame]] = []
    for frame, hits in zip(frames, parsed, strict=True):
        if hits is None:
            groups.append([frame])
            continue
        assert frame.event is not None
        group: list[Frame] = []
        for obj, where in hits:
            if where is None:  # a parallel call without arguments: its own event, whole
                event = SSEEvent(event=frame.event.event, data=_dumps(obj), id=frame.event.id)
                group.append(make_frame(api, event, "split"))
                continue
            text: str = _get(obj, where.path)
            if split.mode in ("adversarial", "at"):
                start = slot_offset.get(where.slot, 0)
                slot_offset[where.slot] = start + len(text)
                local = [c - start for c in slot_cuts[where.slot] if start < c < start + len(text)]
                bounds = [0, *local, len(text)]
            else:
                bounds = [0]
                for length in _piece_lengths(split, len(text), rng):
                    bounds.append(bounds[-1] + length)
            pieces = [text[a:b] for a, b in itertools.pairwise(bounds)] or [text]
            for i, piece in enumerate(pieces):
                piece_obj = copy.deepcopy(obj)
                _set(piece_obj, where.path, piece)
                if len(pieces) > 1:
                    _shape_piece(api, piece_obj, first=i == 0, last=i == len(pieces) - 1)
                event = SSEEvent(event=frame.event.event, data=_dumps(piece_obj), id=frame.event.id)
                group.append(make_frame(api, event, "split"))
        groups.append([frame] if len(hits) == 1 and len(group) == 1 else group)
    if api == "openai-responses":
        return _renumber(api, groups)
    return groups


def _renumber(api: str, groups: list[list[Frame]]) -> list[list[Frame]]:
    """openai-responses numbers its events: keep ``sequence_number`` consecutive after a split."""
    if all(len(g) == 1 for g in groups):
        return groups
    seq: int | None = None
    out: list[list[Frame]] = []
    for group in groups:
        renumbered: list[Frame] = []
        for frame in group:
            obj = _json_object(frame)
            if obj is None or not isinstance(obj.get("sequence_number"), int):
                renumbered.append(frame)
                continue
            seq = obj["sequence_number"] if seq is None else seq + 1
            if obj["sequence_number"] != seq:
                obj["sequence_number"] = seq
                assert frame.event is not None
                event = SSEEvent(event=frame.event.event, data=_dumps(obj), id=frame.event.id)
                frame = make_frame(api, event, frame.origin)
            renumbered.append(frame)
        out.append(renumbered)
    return out


def _json_object(frame: Frame) -> dict[str, Any] | None:
    if frame.event is None:
        return None
    try:
        obj = json.loads(frame.event.data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


# ----------------------------------------------------------------- reduced content (shrink)


def _locate(api: str, frame: Frame) -> tuple[dict[str, Any], _Delta] | None:
    locate = _LOCATORS.get(api)
    obj = _json_object(frame) if locate is not None else None
    where = locate(obj) if locate is not None and obj is not None else None
    return None if where is None or obj is None else (obj, where)


def content_deltas(api: str, frames: list[Frame]) -> list[tuple[int, Any, str]]:
    """``(frame index, stream, text)`` of every content delta, in stream order; ``stream``
    tells content streams apart (a content block, a choice, a tool call)."""
    found: list[tuple[int, Any, str]] = []
    for i, frame in enumerate(frames):
        hit = _locate(api, frame)
        if hit is not None:
            found.append((i, hit[1].slot, _get(hit[0], hit[1].path)))
    return found


def _envelope_only_here(api: str, obj: dict[str, Any]) -> bool:
    """Whether the event carries once-per-stream fields besides its content (a role, a tool
    call's id, a finish reason, usage), so it must stay even without content."""
    if api == "openai-chat":
        choice = obj["choices"][0]
        calls = choice["delta"].get("tool_calls") or []
        return bool(
            choice["delta"].get("role")
            or choice.get("finish_reason")
            or obj.get("usage")
            or any(call.get("id") for call in calls)
        )
    if api == "google-generate":
        return bool(obj["candidates"][0].get("finishReason") or obj.get("usageMetadata"))
    return False


def with_contents(
    api: str, frames: list[Frame], texts: dict[int, str | None]
) -> tuple[list[Frame], list[int]]:
    """``frames`` with the content delta at each index of ``texts`` replaced by its text, or
    dropped for None (kept with empty content when it carries envelope fields); the other
    events are kept byte for byte, so the stream keeps its provider's shape. Also returns
    the input index of each output frame."""
    out: list[Frame] = []
    kept: list[int] = []
    for i, frame in enumerate(frames):
        hit = _locate(api, frame) if i in texts else None
        if hit is not None:
            obj, where = hit
            text = texts[i]
            if text is None and not _envelope_only_here(api, obj):
                continue
            _set(obj, where.path, text or "")
            assert frame.event is not None
            event = SSEEvent(event=frame.event.event, data=_dumps(obj), id=frame.event.id)
            frame = make_frame(api, event, "recorded")
        out.append(frame)
        kept.append(i)
    # one group: a dropped event leaves no gap in openai-responses' sequence_number
    if api == "openai-responses" and out:
        out = _renumber(api, [out])[0]
    return out, kept
