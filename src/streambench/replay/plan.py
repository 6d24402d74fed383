"""The replay plan: every byte the replay delivers and when, built once from a transcript.

``build_plan`` runs the stages in order: frames of the recorded body -> upstream times (latency
model) -> content faults -> content re-split -> transport faults -> transport split into timed
chunks. Transports
(async iterator, httpx, ASGI server) only play a plan back; they make no decisions.
"""

from __future__ import annotations

import bisect
import functools
import json
import random
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

from streambench._pacing import paced
from streambench.errors import SpecError
from streambench.providers import registry
from streambench.providers.apis import json_response, summarize_json
from streambench.replay.chunking import Chunking, parse_chunking
from streambench.replay.content import apply_content_faults
from streambench.replay.deltas import resplit
from streambench.replay.faults import Fault, error_event, http_error, parse_fault
from streambench.replay.frames import Frame, frames_of, make_frame
from streambench.replay.latency import Latency, parse_latency
from streambench.sse import SSEEvent
from streambench.transcript import Transcript

Ending = Literal["eof", "disconnect"]
# Hop-by-hop or body-describing headers: the replay sets its own framing.
_DROPPED_HEADERS = {"content-length", "transfer-encoding", "content-encoding", "connection"}


class Chunk(NamedTuple):
    """One write to the wire: ``data`` is delivered ``t_ms`` after the request. A named tuple:
    plans hold one per write (a frozen dataclass cost more to build than the rest of the plan),
    and it is itself the ``(t_ms, data)`` item the pacing loop takes."""

    t_ms: float
    data: bytes


@dataclass(frozen=True)
class TimelineEntry:
    """A delivered frame: complete at the client at ``t_ms`` (its last byte's chunk)."""

    t_ms: float
    frame: Frame

    @property
    def event(self) -> SSEEvent | None:
        return self.frame.event


@dataclass(frozen=True)
class ReplayPlan:
    """What to deliver: status, headers, timed chunks, and how the connection ends.

    ``timeline`` lists the complete frames the client receives, in order, with delivery times;
    ``ending`` is ``eof`` (clean close) or ``disconnect`` (the connection drops).
    """

    status: int
    headers: dict[str, str]
    chunks: tuple[Chunk, ...]
    ending: Ending = "eof"
    timeline: tuple[TimelineEntry, ...] = ()
    api: str = "generic-sse"
    source: str = ""
    spec: dict[str, object] = field(default_factory=dict)

    # body, json_payload and content_timeline are computed once per plan (the grader asks
    # for them several times per run); a plan is frozen, and callers only read them.
    @functools.cached_property
    def body(self) -> bytes:
        """Every delivered byte."""
        return b"".join(c.data for c in self.chunks)

    @property
    def duration_ms(self) -> float:
        return self.chunks[-1].t_ms if self.chunks else 0.0

    @functools.cached_property
    def json_payload(self) -> dict[str, Any] | None:
        """The non-streaming JSON response delivered whole (status 200, no SSE event, a clean
        close), None otherwise: a cut JSON body delivers nothing."""
        if self.status != 200 or self.ending != "eof" or any(e.event for e in self.timeline):
            return None
        return json_response(self.body)

    @functools.cached_property
    def content_timeline(self) -> list[tuple[float, str, str]]:
        """``(t_ms, kind, text)`` for every content delta delivered, in order (a complete
        non-streaming JSON response is one delta of each kind, at its last byte)."""
        if self.json_payload is not None:
            whole = summarize_json(self.api, self.json_payload)
            pieces = (("text", whole.text), ("tool_json", whole.tool_json))
            return [(self.duration_ms, kind, text) for kind, text in pieces if text]
        return [
            (entry.t_ms, kind, text)
            for entry in self.timeline
            for kind, text in entry.frame.content
        ]

    def content(self, kind: str = "text") -> str:
        """The delivered content of one kind (text, tool_json, thinking), concatenated."""
        return "".join(text for _, k, text in self.content_timeline if k == kind)

    def schedule(self) -> Iterator[tuple[float, bytes]]:
        """``(t_ms, data)`` of each chunk, what the pacing loop takes."""
        return iter(self.chunks)

    def aiter(self, speed: float = 1.0) -> AsyncIterator[tuple[float, bytes]]:
        """Yield ``(t_ms, data)`` at each chunk's time on the running loop's clock (virtual
        under :func:`~streambench.replay.virtual_time`). ``speed`` > 1 plays faster. It ends
        after the last chunk either way; ``ending`` says whether the connection dropped."""
        return paced(self.schedule(), speed)


def _rng(seed: int, stage: str) -> random.Random:
    """One independent stream per stage: changing the chunking never moves the latency."""
    return random.Random(f"{seed}:{stage}")


def build_plan(
    transcript: Transcript,
    chunking: str | Chunking = "events",
    latency: str | Latency | None = None,
    faults: Sequence[str | Fault] = (),
    seed: int = 0,
) -> ReplayPlan:
    """Plan the replay of ``transcript``; bad specs raise :class:`SpecError` naming the spec."""
    split = parse_chunking(chunking) if isinstance(chunking, str) else chunking
    model = parse_latency(latency) if isinstance(latency, str) else latency or Latency()
    fault_list = [parse_fault(f) if isinstance(f, str) else f for f in faults]
    api = transcript.meta.api
    source = str(transcript.path) if transcript.path else transcript.request.url
    spec: dict[str, object] = {
        "chunking": split.spec,
        "latency": model.spec,
        "faults": [f.spec for f in fault_list],
        "seed": seed,
    }
    headers = {
        k.lower(): v
        for k, v in transcript.response.headers.items()
        if k.lower() not in _DROPPED_HEADERS
    }

    frames = frames_of(api, transcript.response.body)
    times = model.frame_times(frames, transcript.response.chunks, _rng(seed, "latency"), source)
    content_faults = [f for f in fault_list if f.content]
    if content_faults:
        prefill = _prefill(api, transcript.request.body)
        frames, times = apply_content_faults(
            api, frames, times, content_faults, prefill, _rng(seed, "content")
        )
        fault_list = [f for f in fault_list if not f.content]
    if split.content is not None:
        frames, times = _resplit(api, frames, times, split, seed)

    http = [f for f in fault_list if f.kind == "http"]
    if http:
        if len(fault_list) > 1 or content_faults:
            raise SpecError(f"fault {http[0].spec!r}: an http fault cannot combine with others")
        fault = http[0]
        error_headers, error_body = http_error(api, fault.status, fault.retry_after_s)
        first_ms = times[0] if times else 0.0
        chunks = (Chunk(first_ms, error_body),)
        return ReplayPlan(fault.status, error_headers, chunks, "eof", (), api, source, spec)

    frames, times, ending, cut_bytes = _apply_faults(api, frames, times, fault_list)
    chunks, timeline = _deliver(frames, times, split, seed, cut_bytes)
    if cut_bytes is not None:
        ending = "disconnect"
    status = transcript.response.status
    return ReplayPlan(status, headers, tuple(chunks), ending, tuple(timeline), api, source, spec)


def resplit_transcript(
    transcript: Transcript, chunking: str | Chunking, seed: int = 0
) -> Transcript:
    """``transcript`` with the chunking's content re-split written into its events (recorded
    chunk times dropped): the same events the replay would deliver, as a recording."""
    split = parse_chunking(chunking) if isinstance(chunking, str) else chunking
    api = transcript.meta.api
    frames = frames_of(api, transcript.response.body)
    if split.content is not None:
        groups = resplit(api, frames, split.content, _rng(seed, "deltas"))
        frames = [frame for group in groups for frame in group]
    response = replace(transcript.response, body=b"".join(f.raw for f in frames), chunks=None)
    return replace(transcript, response=response, path=None)


def _prefill(api: str, body: object) -> str:
    """The answer's start the recorded request carried (an assistant prefill), if any."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except ValueError:
            return ""
    return registry.lookup(api).read_prompt(body).prefill if isinstance(body, dict) else ""


def _resplit(
    api: str, frames: list[Frame], times: list[float], split: Chunking, seed: int
) -> tuple[list[Frame], list[float]]:
    """Pieces of an event share its time span (from the previous event's time), in proportion
    to their content; the first event has no span: its bytes are all ready at its time."""
    assert split.content is not None
    groups = resplit(api, frames, split.content, _rng(seed, "deltas"))
    out_frames: list[Frame] = []
    out_times: list[float] = []
    prev = times[0] if times else 0.0
    for group, t in zip(groups, times, strict=True):
        total = sum(f.content_chars for f in group) or 1
        done = 0
        for i, frame in enumerate(group):
            done += frame.content_chars
            out_frames.append(frame)
            out_times.append(t if i == len(group) - 1 else prev + (t - prev) * done / total)
        prev = t
    return out_frames, out_times


def _apply_faults(
    api: str, frames: list[Frame], times: list[float], faults: list[Fault]
) -> tuple[list[Frame], list[float], Ending, int | None]:
    """Apply event/text faults from the last position back, so earlier positions stay valid;
    a byte cut is returned to be applied on the final body."""
    events = [i for i, f in enumerate(frames) if f.event is not None]
    ending: Ending = "eof"
    cut_bytes: int | None = None
    by_event: list[tuple[int, Fault]] = []
    for fault in faults:
        if fault.at == "bytes":
            total = sum(len(f.raw) for f in frames)
            if fault.pos >= total:
                raise fault.fail(f"bytes={fault.pos} is past the end ({total} bytes)")
            cut_bytes = fault.pos if cut_bytes is None else min(cut_bytes, fault.pos)
        elif fault.at == "text":
            by_event.append((_event_of_text(frames, events, fault), fault))
        elif fault.at == "delta":
            by_event.append((_event_of_delta(frames, events, fault), fault))
        else:
            if fault.pos >= len(events):
                raise fault.fail(f"event={fault.pos} is past the end ({len(events)} events)")
            by_event.append((fault.pos, fault))

    frames, times = list(frames), list(times)
    # stable: for one position, stall/duplicate/garbage act before a cut does
    order = {"stall": 0, "duplicate": 1, "garbage": 2}
    for n, fault in sorted(by_event, key=lambda p: (-p[0], order.get(p[1].kind, 3))):
        i = events[n]
        before = times[i - 1] if i > 0 else times[i]
        if fault.kind == "stall":
            times[i:] = [t + fault.stall_ms for t in times[i:]]
        elif fault.kind == "duplicate":
            frames.insert(i + 1, replace(frames[i], origin="duplicate"))
            times.insert(i + 1, times[i])
        elif fault.kind == "garbage":
            frames.insert(i, _garbage(api, frames[i]))
            times.insert(i, before)
        elif fault.kind == "disconnect" and fault.at == "text":
            del frames[i + 1 :], times[i + 1 :]
            ending = "disconnect"
        else:  # disconnect, truncate, error-event: the stream ends before event n
            del frames[i:], times[i:]
            if fault.kind == "error-event":
                frames.append(
                    make_frame(api, error_event(api, _next_sequence(frames)), "error-event")
                )
                times.append(before)
            ending = "disconnect" if fault.kind == "disconnect" else "eof"
    return frames, times, ending, cut_bytes


def _event_of_text(frames: list[Frame], events: list[int], fault: Fault) -> int:
    """Index (among events) of the event that delivers the ``pos``-th content character."""
    seen = 0
    for n, i in enumerate(events):
        seen += frames[i].content_chars
        if seen >= fault.pos and fault.pos > 0:
            return n
    raise fault.fail(f"text={fault.pos} is past the end ({seen} content characters)")


def _event_of_delta(frames: list[Frame], events: list[int], fault: Fault) -> int:
    """Index (among events) of the content delta after ``pos`` deltas: the stream ends before."""
    carrying = [n for n, i in enumerate(events) if frames[i].content_chars]
    if fault.pos >= len(carrying):
        raise fault.fail(f"delta={fault.pos} is past the end ({len(carrying)} content deltas)")
    return carrying[fault.pos]


def _garbage(api: str, frame: Frame) -> Frame:
    """A copy of the event whose data is cut in half: one line of malformed JSON."""
    assert frame.event is not None
    data = frame.event.data.replace("\n", " ")
    # DEL keeps it malformed even when the half happens to parse ("12" of "1234")
    event = SSEEvent(event=frame.event.event, data=data[: max(1, len(data) // 2)] + "\x7f")
    return Frame(make_frame(api, event, "garbage").raw, event, (), "garbage")


def _next_sequence(frames: list[Frame]) -> int:
    for frame in reversed(frames):
        if frame.event is None:
            continue
        try:
            obj = json.loads(frame.event.data)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("sequence_number"), int):
            return obj["sequence_number"] + 1
    return 0


def _deliver(
    frames: list[Frame],
    times: list[float],
    split: Chunking,
    seed: int,
    cut_bytes: int | None,
) -> tuple[list[Chunk], list[TimelineEntry]]:
    """Cut the body into chunks; a byte is ready at a time interpolated across its frame."""
    body = b"".join(f.raw for f in frames)
    frame_ends: list[int] = []
    at = 0
    for frame in frames:
        at += len(frame.raw)
        frame_ends.append(at)
    cuts = split.transport.cuts(body, frame_ends, _rng(seed, "chunking"))
    if cut_bytes is not None:
        cuts = [c for c in cuts if c < cut_bytes] + [cut_bytes]

    if not cuts:
        return [], []
    chunks: list[Chunk] = []
    append, new = chunks.append, tuple.__new__  # (a named tuple's __new__ is a Python call)
    start = 0
    # the frame holding the chunk's last byte: j, from frame_start to frame_end, its time
    # running from prev (the frame before's) to t_end (cuts increase: one walk, no search)
    j, frame_start, frame_end = 0, 0, frame_ends[0]
    prev = t_end = times[0]
    for end in cuts:
        if end > frame_end:
            while frame_ends[j] < end:
                j += 1
            frame_start, frame_end = frame_ends[j - 1], frame_ends[j]
            prev, t_end = times[j - 1], times[j]
        span = frame_end - frame_start
        # the byte is ready at a time interpolated across its frame
        t_ms = prev + (t_end - prev) * (end - frame_start) / span if span else t_end
        append(new(Chunk, (t_ms, body[start:end])))
        start = end
    chunk_ends = cuts
    timeline: list[TimelineEntry] = []
    for frame, end in zip(frames, frame_ends, strict=True):
        if cut_bytes is not None and end > cut_bytes:
            break
        if frame.event is None:
            continue
        k = bisect.bisect_left(chunk_ends, end)
        timeline.append(TimelineEntry(chunks[k].t_ms, frame))
    return chunks, timeline
