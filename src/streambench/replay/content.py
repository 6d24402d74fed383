"""Content faults: what the model said, changed, in the recording's own provider format.

Each content delta event is located by its API's module (the one content string it carries and
the slot it continues: a text block, a tool call's arguments, thinking). A fault rewrites the
slots' content and cuts it back at the old delta bounds, so the stream keeps its events and
shapes; events whose content does not change are kept byte for byte.

* ``stop:max_tokens@char=N`` / ``@text=P%``: the answer ends after N content characters (P% of
  them) with the provider's max-tokens stop reason; later content events are dropped and the
  final events (stop reason, done texts, the response object) say what was kept.
* ``reformat:compact|spaced|newlines``: the JSON of the structured part (tool input, or a text
  that is JSON: the continuation of a JSON prefill) re-serialised with other whitespace.
* ``escape:ascii|raw``: non-ASCII inside its JSON strings as ``\\uXXXX`` (surrogate pairs for
  astral characters), or every ``\\uXXXX`` escape that may be raw sent raw.
* ``pings:N`` / ``empty-deltas:N``: N keep-alive events / empty content deltas at seeded places
  between the deltas.
* ``tool:split-args``: the tool calls' argument deltas, each cut in two, interleaved across the
  calls (seeded), every call opened first: parallel calls told apart only by their index.
* ``blocks:reorder``: the answer's blocks moved to text, tool use, thinking (thinking after the
  text, text before the tool use), their wire indexes renumbered.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streambench.providers import registry
from streambench.providers.base import (
    Cut,
    Delta,
    ProviderAPI,
    Unit,
    dumps,
    get_path,
    set_path,
    split_deltas,
)
from streambench.replay.deltas import json_object, renumber
from streambench.replay.faults import Fault
from streambench.replay.frames import Frame, make_frame
from streambench.replay.json_text import edits_array, json_start_state, rewrite, string_state
from streambench.sse import SSEEvent, decode_all

_ORIGIN = CONTENT_FAULT_ORIGIN = "content-fault"  # the origin of every frame a fault rewrote
REFUSAL = "I'm sorry, but I can't help with that."


@dataclass
class _Located:
    index: int  # in the frame list
    obj: dict[str, Any]
    where: Delta

    @property
    def text(self) -> str:
        return str(get_path(self.obj, self.where.path))


def _locate(api: ProviderAPI, frames: list[Frame]) -> list[_Located]:
    found = []
    for i, frame in enumerate(frames):
        obj = json_object(frame)
        where = api.locate(obj) if obj is not None else None
        if obj is not None and where is not None:
            found.append(_Located(i, obj, where))
    return found


def _reencode(api: str, frame: Frame, obj: dict[str, Any], old_type: Any = None) -> Frame:
    """``frame`` carrying ``obj``; an ``event:`` name that was the type follows a new type."""
    assert frame.event is not None
    name = frame.event.event
    if old_type is not None and name == old_type and obj.get("type") != old_type:
        name = str(obj.get("type"))
    event = SSEEvent(event=name, data=dumps(obj), id=frame.event.id)
    return make_frame(api, event, _ORIGIN)


def apply_content_faults(
    api: str,
    frames: list[Frame],
    times: list[float],
    faults: list[Fault],
    prefill: str,
    rng: random.Random,
) -> tuple[list[Frame], list[float]]:
    """Apply content faults in the order given; ``prefill`` is the answer's start the request
    carried (the structured part's JSON may begin there)."""
    for fault in faults:
        wire = registry.lookup(api)
        if fault.kind in ("reformat", "escape"):
            frames = _rewrite_json(api, wire, frames, fault, prefill)
        elif fault.kind == "bad-json":
            frames = _bad_json(api, wire, frames, fault, prefill)
        elif fault.kind == "empty-edits":
            frames = _empty_edits(api, wire, frames, fault, prefill)
        elif fault.kind == "stop":
            frames, times = _stop(api, wire, frames, times, fault)
        elif fault.kind == "tool" and fault.arg == "split-args":
            frames, times = _split_args(api, wire, frames, times, fault, rng)
        elif fault.kind == "tool":
            frames = _duplicate_tool_id(api, wire, frames, fault)
        elif fault.kind == "blocks":
            frames, times = _reorder_blocks(api, wire, frames, times, fault)
        elif fault.kind == "refusal":
            frames, times = _refusal(api, wire, frames, times, fault)
        elif fault.kind in ("pings", "empty-deltas"):
            frames, times = _sprinkle(api, wire, frames, times, fault, rng)
        else:  # the vocabulary and this dispatch are kept in step by a test
            raise fault.fail("not a content fault")
    if wire.numbered:
        frames = renumber(api, [frames])[0]
    return frames, times


# ----------------------------------------------------------------------- reformat / escape


# What each character of a structured slot becomes: (text with its head, head length, starts
# inside a string) -> one string per character of the text after the head.
Transform = Callable[[str, int, bool], list[str]]


def _rewrite_structured(
    api: str, wire: ProviderAPI, frames: list[Frame], prefill: str, transform: Transform
) -> tuple[list[Frame], int]:
    """Rewrite every structured slot (tool input, or text that is JSON) with ``transform``, cut
    back at the old delta bounds; returns the frames and how many slots were structured."""
    slots: dict[tuple[Any, ...], list[_Located]] = {}
    for hit in _locate(wire, frames):
        slots.setdefault(hit.where.slot, []).append(hit)
    out = list(frames)
    structured = 0
    for hits in slots.values():
        if hits[0].where.kind == "thinking":
            continue
        text = "".join(h.text for h in hits)
        head = prefill if hits[0].where.kind == "text" else ""
        in_string = json_start_state(head + text)
        if in_string is None:
            continue  # prose or code, not JSON: nothing to rewrite
        structured += 1
        emitted = transform(head + text, len(head), in_string)
        at = 0
        for hit in hits:
            piece = "".join(emitted[at : at + len(hit.text)])
            at += len(hit.text)
            if piece != hit.text:
                obj = copy.deepcopy(hit.obj)
                set_path(obj, hit.where.path, piece)
                out[hit.index] = _reencode(api, frames[hit.index], obj)
    return out, structured


def _rewrite_json(
    api: str, wire: ProviderAPI, frames: list[Frame], fault: Fault, prefill: str
) -> list[Frame]:
    """reformat / escape: the same values, other whitespace or escapes."""
    style = fault.arg if fault.kind == "reformat" else None
    escape = fault.arg if fault.kind == "escape" else None

    def transform(text: str, start: int, in_string: bool) -> list[str]:
        emitted = rewrite(text, start, in_string=in_string, style=style, escape=escape)
        return emitted[start:]

    return _rewrite_structured(api, wire, frames, prefill, transform)[0]


def _bad_json(
    api: str, wire: ProviderAPI, frames: list[Frame], fault: Fault, prefill: str
) -> list[Frame]:
    """bad-json@char=N: the N-th character of the structured part (after any prefill, across
    its slots in stream order) made invalid: ``#`` outside strings, a raw U+0001 inside."""
    seen = 0
    hit_at: list[int] = []

    def transform(text: str, start: int, in_string: bool) -> list[str]:
        nonlocal seen
        emitted = list(text[start:])
        local = fault.pos - seen
        seen += len(emitted)
        if 0 <= local < len(emitted) and not hit_at:
            hit_at.append(local)
            inside = string_state(text, in_string)[start + local]
            emitted[local] = "\x01" if inside else "#"
        return emitted

    out, structured = _rewrite_structured(api, wire, frames, prefill, transform)
    if not structured:
        raise fault.fail("the stream has no structured part (JSON text or tool input)")
    if not hit_at:
        raise fault.fail(f"char={fault.pos} is past the end ({seen} structured characters)")
    return out


def _empty_edits(
    api: str, wire: ProviderAPI, frames: list[Frame], fault: Fault, prefill: str
) -> list[Frame]:
    """empty-edits: the first array under a key ending in ``edits`` emptied."""
    found: list[bool] = []

    def transform(text: str, start: int, in_string: bool) -> list[str]:
        emitted = list(text[start:])
        span = None if found else edits_array(text, in_string)
        if span is not None:
            found.append(True)
            for i in range(max(span[0], start), span[1]):
                emitted[i - start] = ""
        return emitted

    out, _ = _rewrite_structured(api, wire, frames, prefill, transform)
    if not found:
        raise fault.fail("the structured part has no edits array (a key ending in 'edits')")
    return out


# ------------------------------------------------------------------------------- stop


def _stop(
    api: str, wire: ProviderAPI, frames: list[Frame], times: list[float], fault: Fault
) -> tuple[list[Frame], list[float]]:
    hits = _locate(wire, frames)
    total = sum(len(h.text) for h in hits if h.where.kind != "thinking")
    limit = math.floor(total * fault.fraction) if fault.fraction is not None else fault.pos
    if limit >= total:
        raise fault.fail(f"char={limit} is at or past the end ({total} content characters)")
    reason = wire.stop_reasons.get("max_tokens")
    if reason is None:
        raise fault.fail(f"{api} has no stop reason to end an answer with")
    return _cut(api, wire, frames, times, hits, limit, reason)


def _refusal(
    api: str, wire: ProviderAPI, frames: list[Frame], times: list[float], fault: Fault
) -> tuple[list[Frame], list[float]]:
    """refusal: the provider's refusal instead of the answer: a refusal stop reason after no
    content (anthropic, google), or the refusal text in refusal deltas (openai-chat, -responses)."""
    hits = _locate(wire, frames)
    if wire.refusal_key is not None:
        return _refusal_deltas(api, wire, frames, times, hits, fault)
    reason = wire.stop_reasons.get("refusal")
    if reason is None:
        raise fault.fail(f"{api} has no refusal shape streambench can write")
    if not any(h.text for h in hits if h.where.kind != "thinking"):
        raise fault.fail(f"the stream has no content deltas ({api}) to replace")
    return _cut(api, wire, frames, times, hits, 0, reason)


def _refusal_deltas(
    api: str,
    wire: ProviderAPI,
    frames: list[Frame],
    times: list[float],
    hits: list[_Located],
    fault: Fault,
) -> tuple[list[Frame], list[float]]:
    text_hits = [h for h in hits if h.where.kind == "text"]
    if not text_hits:
        raise fault.fail(f"the stream has no text deltas ({api}) to carry a refusal")
    words = split_deltas(REFUSAL)
    last = len(text_hits) - 1
    pieces = [*words[:last], "".join(words[last:])]
    pieces += [""] * (len(text_hits) - len(pieces))
    by_index = {h.index: (h, piece) for h, piece in zip(text_hits, pieces, strict=True)}
    said: dict[tuple[Any, ...], str] = {}
    for hit, piece in by_index.values():
        said[hit.where.slot] = said.get(hit.where.slot, "") + piece
    other = {h.index for h in hits if h.where.kind != "text"}
    events = [o for f in frames if (o := json_object(f)) is not None]
    out_frames: list[Frame] = []
    out_times: list[float] = []
    for i, (frame, t) in enumerate(zip(frames, times, strict=True)):
        if i in other:
            continue  # a refusal carries no tool calls or thinking
        parsed = json_object(frame)
        if i in by_index:
            hit, piece = by_index[i]
            obj = copy.deepcopy(hit.obj)
            wire.refuse(obj, hit.where, piece)
            frame = _reencode(api, frame, obj, hit.obj.get("type"))
        elif parsed is not None:
            rewritten = wire.refused(copy.deepcopy(parsed), said, events)
            if rewritten is None:
                continue
            if rewritten != parsed:
                frame = _reencode(api, frame, rewritten, parsed.get("type"))
        out_frames.append(frame)
        out_times.append(t)
    return _reindexed(api, wire, out_frames), out_times


def _cut(
    api: str,
    wire: ProviderAPI,
    frames: list[Frame],
    times: list[float],
    hits: list[_Located],
    limit: int,
    reason: str,
) -> tuple[list[Frame], list[float]]:
    """End the answer after ``limit`` content characters with the wire stop ``reason``."""
    seen = 0
    kept: dict[tuple[Any, ...], str] = {}
    cut_hit: _Located | None = None
    for hit in hits:
        size = 0 if hit.where.kind == "thinking" else len(hit.text)
        if seen + size > limit:
            cut_hit = hit
            kept[hit.where.slot] = kept.get(hit.where.slot, "") + hit.text[: limit - seen]
            break
        seen += size
        kept[hit.where.slot] = kept.get(hit.where.slot, "") + hit.text
    assert cut_hit is not None
    piece = cut_hit.text[: limit - seen]
    before = [o for f in frames[: cut_hit.index] if (o := json_object(f)) is not None]
    cut = Cut(reason, cut_hit.where.slot, kept, before)
    out_frames = list(frames[: cut_hit.index])
    out_times = list(times[: cut_hit.index])
    obj = copy.deepcopy(cut_hit.obj)
    set_path(obj, cut_hit.where.path, piece)
    wire.on_cut(obj, cut)
    out_frames.append(_reencode(api, frames[cut_hit.index], obj))
    out_times.append(times[cut_hit.index])
    for frame, t in zip(frames[cut_hit.index + 1 :], times[cut_hit.index + 1 :], strict=True):
        parsed = json_object(frame)
        if parsed is None:
            out_frames.append(frame)  # [DONE], comments: the stream's own end
            out_times.append(t)
            continue
        old_type = parsed.get("type")
        rewritten = wire.after_cut(copy.deepcopy(parsed), cut)
        if rewritten is None:
            continue
        keep = rewritten == parsed
        out_frames.append(frame if keep else _reencode(api, frame, rewritten, old_type))
        out_times.append(t)
    return out_frames, out_times


# ------------------------------------------------------------------------------ tools


def _duplicate_tool_id(
    api: str, wire: ProviderAPI, frames: list[Frame], fault: Fault
) -> list[Frame]:
    """tool:duplicate-id: the second tool call takes the first one's id, everywhere."""
    found: list[tuple[int, dict[str, Any], list[Any]]] = []
    ids: list[str] = []
    for i, frame in enumerate(frames):
        obj = json_object(frame)
        paths = wire.tool_call_ids(obj) if obj is not None else []
        if obj is None or not paths:
            continue
        found.append((i, obj, paths))
        for path in paths:
            if get_path(obj, path) not in ids:
                ids.append(str(get_path(obj, path)))
    if len(ids) < 2:
        raise fault.fail(f"the stream has {len(ids)} tool call id(s) ({api}); it needs two")
    out = list(frames)
    for i, obj, paths in found:
        if any(get_path(obj, path) == ids[1] for path in paths):
            changed = copy.deepcopy(obj)
            for path in paths:
                if get_path(changed, path) == ids[1]:
                    set_path(changed, path, ids[0])
            out[i] = _reencode(api, frames[i], changed)
    return out


# ----------------------------------------------------------------------------- blocks


@dataclass
class _Block:
    """One block of the answer and the frames it spans (a ping inside it travels with it)."""

    key: tuple[Any, ...]
    kind: str
    position: int | None
    frames: list[int]


_RANKS = {"text": 0, "tool": 1, "other": 1, "thinking": 2}  # blocks:reorder's order


def _blocks(wire: ProviderAPI, frames: list[Frame]) -> tuple[list[_Block], int, int]:
    """The answer's blocks in stream order and the span ``[first, end)`` of frames they cover;
    a frame of no block inside the span belongs to the block before it."""
    units: list[Unit | None] = []
    for frame in frames:
        obj = json_object(frame)
        units.append(wire.unit(obj) if obj is not None else None)
    owned = [i for i, unit in enumerate(units) if unit is not None]
    if not owned:
        return [], 0, 0
    blocks: dict[tuple[Any, ...], _Block] = {}
    current: _Block | None = None
    for i in range(owned[0], owned[-1] + 1):
        unit = units[i]
        if unit is not None:
            current = blocks.get(unit.key)
            if current is None:
                current = blocks[unit.key] = _Block(unit.key, "other", unit.position, [])
            if unit.kind is not None and (unit.opens or len(current.frames) == 0):
                current.kind = unit.kind
        assert current is not None
        current.frames.append(i)
    return list(blocks.values()), owned[0], owned[-1] + 1


def _moved_blocks(
    api: str,
    wire: ProviderAPI,
    frames: list[Frame],
    times: list[float],
    span: tuple[int, int],
    region: list[Frame],
) -> tuple[list[Frame], list[float]]:
    """``frames`` with ``span`` replaced by ``region`` (the same times, in order; a split frame
    shares its time), the blocks' wire positions renumbered in their new order."""
    first, end = span
    out = [*frames[:first], *region, *frames[end:]]
    span_times = sorted(times[first:end] + [times[first]] * (len(region) - (end - first)))
    return _reindexed(api, wire, out), [*times[:first], *span_times, *times[end:]]


def _reindexed(api: str, wire: ProviderAPI, frames: list[Frame]) -> list[Frame]:
    """The blocks' wire positions (anthropic's ``index``, responses' ``output_index``) made
    0, 1, 2 ... in stream order, after blocks moved or were dropped."""
    moved: dict[int, int] = {}
    for frame in frames:
        obj = json_object(frame)
        unit = wire.unit(obj) if obj is not None else None
        if unit is not None and unit.position is not None and unit.position not in moved:
            moved[unit.position] = len(moved)
    if all(old == new for old, new in moved.items()):
        return frames
    out = list(frames)
    for i, frame in enumerate(out):
        obj = json_object(frame)
        if obj is None:
            continue
        changed = copy.deepcopy(obj)
        wire.reindex(changed, moved)
        if changed != obj:
            out[i] = _reencode(api, frame, changed)
    return out


def _reorder_blocks(
    api: str, wire: ProviderAPI, frames: list[Frame], times: list[float], fault: Fault
) -> tuple[list[Frame], list[float]]:
    """blocks:reorder: the blocks sorted text, tool use, thinking (stable)."""
    blocks, first, end = _blocks(wire, frames)
    if not blocks:
        raise fault.fail(f"{api} streams no blocks streambench can move")
    ranked = sorted(blocks, key=lambda b: _RANKS[b.kind])
    region = [frames[i] for b in ranked for i in b.frames]
    if region == frames[first:end]:
        kinds = ", ".join(dict.fromkeys(b.kind for b in blocks))
        raise fault.fail(f"the blocks already run text, tool use, thinking ({kinds})")
    return _moved_blocks(api, wire, frames, times, (first, end), region)


def _split_args(
    api: str,
    wire: ProviderAPI,
    frames: list[Frame],
    times: list[float],
    fault: Fault,
    rng: random.Random,
) -> tuple[list[Frame], list[float]]:
    """tool:split-args: every call opened, then the argument deltas of all calls, each cut in
    two, interleaved (the first call's, the second's, then seeded), then their ends."""
    frames, times = _separated(api, wire, frames, times)
    blocks, _, _ = _blocks(wire, frames)
    deltas: dict[tuple[Any, ...], list[int]] = {}
    for block in blocks:
        for i in block.frames:
            obj = json_object(frames[i])
            where = wire.locate(obj) if obj is not None else None
            if block.kind == "tool" and where is not None and where.kind == "tool_json":
                deltas.setdefault(block.key, []).append(i)
    tools = [b for b in blocks if b.key in deltas]
    if len(tools) < 2:
        raise fault.fail(
            f"the stream has {len(tools)} tool call(s) with streamed arguments ({api});"
            " it needs two"
        )
    first, end = tools[0].frames[0], tools[-1].frames[-1] + 1
    heads: list[Frame] = []
    tails: list[Frame] = []
    queues: list[list[Frame]] = []
    for block in tools:
        at = block.frames.index(deltas[block.key][0])
        heads += [frames[i] for i in block.frames[:at]]
        tails += [frames[i] for i in block.frames[at:] if i not in deltas[block.key]]
        queues.append([p for i in deltas[block.key] for p in _halves(api, wire, frames[i], rng)])
    merged = [queues[0].pop(0), queues[1].pop(0)]
    while any(queues):
        merged.append(rng.choice([q for q in queues if q]).pop(0))
    inside = {i for b in tools for i in b.frames}
    others = [frames[i] for i in range(first, end) if i not in inside]
    region = [*heads, *merged, *tails, *others]
    return _moved_blocks(api, wire, frames, times, (first, end), region)


def _separated(
    api: str, wire: ProviderAPI, frames: list[Frame], times: list[float]
) -> tuple[list[Frame], list[float]]:
    """Events carrying several tool calls at once as one event per call."""
    out_frames: list[Frame] = []
    out_times: list[float] = []
    for frame, t in zip(frames, times, strict=True):
        obj = json_object(frame)
        parts = wire.separate(obj) if obj is not None and wire.locate(obj) is None else []
        for part in parts or [None]:
            out_frames.append(frame if part is None else _reencode(api, frame, part))
            out_times.append(t)
    return out_frames, out_times


def _halves(api: str, wire: ProviderAPI, frame: Frame, rng: random.Random) -> list[Frame]:
    """A delta event cut in two at a seeded place (one of a single character kept whole)."""
    obj = json_object(frame)
    assert obj is not None
    where = wire.locate(obj)
    assert where is not None
    text = str(get_path(obj, where.path))
    if len(text) < 2:
        return [frame]
    cut = rng.randint(1, len(text) - 1)
    pieces = []
    for piece, first in ((text[:cut], True), (text[cut:], False)):
        part = copy.deepcopy(obj)
        set_path(part, where.path, piece)
        wire.shape_piece(part, first=first, last=not first)
        pieces.append(_reencode(api, frame, part))
    return pieces


# ------------------------------------------------------------------- pings / empty deltas


def _sprinkle(
    api: str,
    wire: ProviderAPI,
    frames: list[Frame],
    times: list[float],
    fault: Fault,
    rng: random.Random,
) -> tuple[list[Frame], list[float]]:
    hits = _locate(wire, frames)
    if not hits:
        raise fault.fail(f"the stream has no content deltas ({api}) to put {fault.kind} between")
    raw = wire.keepalive()
    if fault.kind == "pings" and raw is None:
        raise fault.fail(f"{api} has no keep-alive event its clients accept")
    # before a content delta other than the first: between deltas, never before the stream starts
    places = hits[1:] or hits
    chosen = sorted((rng.choice(places) for _ in range(fault.count)), key=lambda h: h.index)
    inserts: dict[int, list[Frame]] = {}
    for hit in chosen:
        if fault.kind == "pings" and raw is not None:
            event = _event_of(raw)
            frame = make_frame(api, event, _ORIGIN, raw) if event else Frame(raw, None)
        else:
            obj = copy.deepcopy(hit.obj)
            set_path(obj, hit.where.path, "")
            wire.shape_piece(obj, first=False, last=False)
            frame = _reencode(api, frames[hit.index], obj)
        inserts.setdefault(hit.index, []).append(frame)
    out_frames: list[Frame] = []
    out_times: list[float] = []
    for i, (frame, t) in enumerate(zip(frames, times, strict=True)):
        for extra in inserts.get(i, []):
            out_frames.append(extra)
            out_times.append(times[i - 1] if i else t)
        out_frames.append(frame)
        out_times.append(t)
    return out_frames, out_times


def _event_of(raw: bytes) -> SSEEvent | None:
    events = decode_all(raw)
    return events[0] if events else None
