"""A stream as frames: the exact bytes of each SSE event (with any comments before it).

Frames are what the replay moves around: a content re-split replaces one frame by several,
a fault inserts or drops frames, and the body is their concatenation again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from streambench.providers.apis import event_content
from streambench.sse import SSEEvent, decode_all, encode


@dataclass(frozen=True)
class Frame:
    """``raw`` bytes of one event; ``event`` is None for a trailing incomplete tail.

    ``origin`` says where the frame came from: recorded, split, duplicate, garbage, error-event.
    """

    raw: bytes
    event: SSEEvent | None
    content: tuple[tuple[str, str], ...] = ()
    origin: str = "recorded"

    @functools.cached_property  # frames are shared by every plan of their recording
    def content_chars(self) -> int:
        return sum(len(text) for _, text in self.content)


def make_frame(api: str, event: SSEEvent, origin: str, raw: bytes | None = None) -> Frame:
    """A frame for ``event``, encoded unless its ``raw`` bytes are given."""
    raw = encode(event) if raw is None else raw
    return Frame(raw, event, tuple(event_content(api, event)), origin)


# Bodies cut into frames at once: every run of a recording (each chunking, latency, fault,
# seed and SUT) starts from the same frames.
_CACHED_BODIES = 256


def frames_of(api: str, body: bytes) -> list[Frame]:
    """Cut ``body`` after each event's end; bytes after the last event form a tail frame."""
    return list(_frames_of(api, body))


@functools.lru_cache(maxsize=_CACHED_BODIES)
def _frames_of(api: str, body: bytes) -> tuple[Frame, ...]:
    frames: list[Frame] = []
    at = 0
    for event in decode_all(body):
        frames.append(make_frame(api, event, "recorded", body[at : event.end]))
        at = event.end
    if at < len(body):
        frames.append(Frame(body[at:], None))
    return tuple(frames)
