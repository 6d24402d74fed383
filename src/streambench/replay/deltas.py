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

import itertools
import json
import random
import re
from dataclasses import dataclass
from typing import Any

from streambench.providers import registry
from streambench.providers.base import Delta, copy_json, dumps, get_path, set_path
from streambench.replay.frames import Frame, make_frame
from streambench.replay.specs import Term, parse_offsets
from streambench.sse import SSEEvent


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


def _content_parts(provider: Any, frame: Frame) -> list[tuple[dict[str, Any], Delta | None]] | None:
    """The frame's event as objects to split (several for parallel calls); None: keep as is."""
    obj = json_object(frame)
    if obj is None:
        return None
    where = provider.locate(obj)
    if where is not None:
        return [(obj, where)]
    return [(part, provider.locate(part)) for part in provider.separate(obj)] or None


def resplit(
    api: str, frames: list[Frame], split: ContentSplit, rng: random.Random
) -> list[list[Frame]]:
    """One group of frames per input frame: the pieces of a content delta, or the frame as is."""
    provider = registry.lookup(api)
    parsed = [_content_parts(provider, frame) for frame in frames]

    # adversarial cuts look at each slot's whole content, so patterns across deltas are cut too
    slot_cuts: dict[tuple[Any, ...], list[int]] = {}
    if split.mode in ("adversarial", "at"):
        texts: dict[tuple[Any, ...], list[str]] = {}
        for hits in parsed:
            for obj, where in hits or ():
                if where is not None:
                    texts.setdefault(where.slot, []).append(get_path(obj, where.path))
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
                event = SSEEvent(event=frame.event.event, data=dumps(obj), id=frame.event.id)
                group.append(make_frame(api, event, "split"))
                continue
            text: str = get_path(obj, where.path)
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
            if len(hits) == 1 and len(pieces) <= 1:
                group.append(frame)
                continue
            for i, piece in enumerate(pieces):
                piece_obj = copy_json(obj)
                set_path(piece_obj, where.path, piece)
                if len(pieces) > 1:
                    provider.shape_piece(piece_obj, first=i == 0, last=i == len(pieces) - 1)
                event = SSEEvent(event=frame.event.event, data=dumps(piece_obj), id=frame.event.id)
                group.append(make_frame(api, event, "split"))
        groups.append(group)
    if provider.numbered:
        return renumber(api, groups)
    return groups


def renumber(api: str, groups: list[list[Frame]]) -> list[list[Frame]]:
    """An API that numbers its events (openai-responses): keep ``sequence_number`` consecutive."""
    if all(len(g) == 1 for g in groups):
        return groups
    seq: int | None = None
    out: list[list[Frame]] = []
    for group in groups:
        renumbered: list[Frame] = []
        for frame in group:
            obj = json_object(frame)
            if obj is None or not isinstance(obj.get("sequence_number"), int):
                renumbered.append(frame)
                continue
            seq = obj["sequence_number"] if seq is None else seq + 1
            if obj["sequence_number"] != seq:
                obj["sequence_number"] = seq
                assert frame.event is not None
                event = SSEEvent(event=frame.event.event, data=dumps(obj), id=frame.event.id)
                frame = make_frame(api, event, frame.origin)
            renumbered.append(frame)
        out.append(renumbered)
    return out


def json_object(frame: Frame) -> dict[str, Any] | None:
    if frame.event is None:
        return None
    try:
        obj = json.loads(frame.event.data)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


# ----------------------------------------------------------------- reduced content (shrink)


def _locate(api: str, frame: Frame) -> tuple[dict[str, Any], Delta] | None:
    obj = json_object(frame)
    where = registry.lookup(api).locate(obj) if obj is not None else None
    return None if where is None or obj is None else (obj, where)


def content_deltas(api: str, frames: list[Frame]) -> list[tuple[int, Any, str]]:
    """``(frame index, stream, text)`` of every content delta, in stream order; ``stream``
    tells content streams apart (a content block, a choice, a tool call)."""
    found: list[tuple[int, Any, str]] = []
    for i, frame in enumerate(frames):
        hit = _locate(api, frame)
        if hit is not None:
            found.append((i, hit[1].slot, get_path(hit[0], hit[1].path)))
    return found


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
            if text is None and not registry.lookup(api).carries_envelope(obj):
                continue
            set_path(obj, where.path, text or "")
            assert frame.event is not None
            event = SSEEvent(event=frame.event.event, data=dumps(obj), id=frame.event.id)
            frame = make_frame(api, event, "recorded")
        out.append(frame)
        kept.append(i)
    # one group: a dropped event leaves no gap in openai-responses' sequence_number
    if registry.lookup(api).numbered and out:
        out = renumber(api, [out])[0]
    return out, kept
