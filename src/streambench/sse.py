"""Server-sent events: an incremental decoder, exact under any chunking, and an encoder.

Decoding follows the WHATWG event-stream interpretation
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):

>>> decode_all(b"event: ping\\ndata: {}\\n\\n")
[SSEEvent(event='ping', data='{}', id=None, retry=None, start=0, end=22)]

Nothing is observable before a blank line, so the decoder only ever parses complete blocks
(the lines between two blank lines); everything after the last blank line waits in a buffer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

__all__ = ["SSEDecoder", "SSEEvent", "decode_all", "encode"]

_BOM = b"\xef\xbb\xbf"
# A maximal run of line-end bytes; it holds a blank line when it is more than one line end.
_LINE_END_RUN = re.compile(rb"[\r\n]+")
_SINGLE_LINE_ENDS = (b"\r", b"\n", b"\r\n")
# A line end followed by blank lines: what separates blocks (a CR before LF is never alone).
_BLOCK_SEPARATOR = re.compile(rb"((?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)+)")
_LINE_END = re.compile(rb"\r\n|\r|\n")
# In an LF-only region: a block that is one data line, maybe after an event line.
_SIMPLE_BLOCK = re.compile(rb"(?:(?<=\n\n)|(?<!.))(?:event: ([^\n]+)\n)?data: ([^\n]*)\n\n", re.S)


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event; `start`/`end` are byte offsets in the whole stream (BOM included)."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None
    start: int = 0
    end: int = 0


class SSEDecoder:
    """Incremental event-stream decoder: `feed` bytes as they arrive, `close` at end of stream.

    The events do not depend on where the chunks split (inside a UTF-8 character, between
    CR and LF). After `close`, `tail` holds the bytes after the last blank line: a block
    the stream never terminated, which is not dispatched.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._offset = 0  # stream offset of self._buf[0], always at a block boundary
        self._scan = 0  # the blank-line search resumes here in self._buf
        self._has_cr = False  # self._buf holds a CR: use the general line-end search
        self._last_id: str | None = None
        self.tail = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf
        buf += chunk
        if self._has_cr or b"\r" in chunk:
            self._has_cr = True
            end = self._complete_end(final=False)
            return self._take(end) if end else []
        # Fast path, LF only: a blank line is b"\n\n", and it may straddle the chunks.
        end = buf.find(b"\n\n", self._scan)
        if end < 0:
            self._scan = max(len(buf) - 1, 0)
            return []
        return self._take(buf.rfind(b"\n\n", end) + 2)

    def close(self) -> list[SSEEvent]:
        self._scan = 0  # so that blank lines at the buffer start are found, whatever the chunks
        end = self._complete_end(final=True)
        events = self._take(end) if end else []
        self.tail = bytes(self._buf)
        return events

    def _complete_end(self, final: bool) -> int:
        """Offset in the buffer just past its last blank line, 0 when it has none yet."""
        buf = self._buf
        # A trailing CR may be the first half of a CRLF: wait for the next byte or the end.
        limit = len(buf) - 1 if not final and buf.endswith(b"\r") else len(buf)
        end = 0
        for run in _LINE_END_RUN.finditer(buf, self._scan, limit):
            # The buffer starts at a line start, so a run there is all blank lines.
            if run.start() == 0 or run.group() not in _SINGLE_LINE_ENDS:
                end = run.end()
        if not end:
            # The trailing run (at most CRLF without a blank line) may continue next time.
            self._scan = max(0, limit - 2)
        return end

    def _take(self, end: int) -> list[SSEEvent]:
        """Decode the complete blocks in self._buf[:end] and drop them from the buffer."""
        buf = self._buf
        region = bytes(buf[:end])
        del buf[:end]
        offset = self._offset
        self._offset = offset + end
        self._scan = 0
        self._has_cr = b"\r" in buf
        if not offset and region.startswith(_BOM):
            region = region[len(_BOM) :]
            offset = len(_BOM)
        first_cr = region.find(b"\r")
        if first_cr < 0:
            return self._decode_lf(region, offset)
        # Only the blocks around CRs need the general parser; the LF-only ends stay fast.
        head = region.rfind(b"\n\n", 0, first_cr) + 2  # 1 when there is no such block
        head = head if head > 1 else 0
        tail = region.find(b"\n\n", region.rfind(b"\r")) + 2
        tail = tail if tail > 1 else len(region)
        return (
            self._decode_lf(region[:head], offset)
            + self._decode_general(region[head:tail], offset + head)
            + self._decode_lf(region[tail:], offset + tail)
        )

    def _decode_lf(self, region: bytes, offset: int) -> list[SSEEvent]:
        """Events of an LF-only region that starts at a block boundary and ends with one."""
        # One C call cuts out every block that is a `data:` line, maybe after an `event:`
        # line: [gap, event, data, gap, event, data, ..., gap]; the gaps hold other blocks.
        parts = _SIMPLE_BLOCK.split(region)
        events = self._decode_general(parts[0], offset) if parts[0] else []
        append = events.append
        last_id = self._last_id
        pos = offset + len(parts[0])
        items = iter(parts)
        next(items)
        for event_type, data, gap in zip(items, items, items, strict=False):
            start = pos
            if event_type is None:
                pos += len(data) + 8
                append(_event("message", data.decode("utf-8", "replace"), last_id, start, pos))
            else:
                pos += len(event_type) + len(data) + 16
                name = event_type.decode("utf-8", "replace")
                append(_event(name, data.decode("utf-8", "replace"), last_id, start, pos))
            if gap:
                events += self._decode_general(gap, pos)
                last_id = self._last_id
                pos += len(gap)
        return events

    def _decode_general(self, region: bytes, offset: int) -> list[SSEEvent]:
        """Events of any region that starts at a block boundary and ends with one."""
        parts = _BLOCK_SEPARATOR.split(region)
        events = []
        pos = offset
        for piece, separator in zip(parts[::2], parts[1::2], strict=False):
            block = piece.lstrip(b"\r\n")  # blank lines before the block
            if block:
                start = pos + len(piece) - len(block)
                end = pos + len(piece) + _dispatch_length(separator)
                event = self._dispatch(_LINE_END.split(block), start, end)
                if event is not None:
                    events.append(event)
            pos += len(piece) + len(separator)
        return events

    def _dispatch(self, lines: list[bytes], start: int, end: int) -> SSEEvent | None:
        """Interpret one block's lines; an event unless its data buffer stayed empty."""
        event_type = b""
        data: list[bytes] = []
        retry = None
        for line in lines:
            name, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event_type = value
            elif name == b"id":
                if b"\0" not in value:
                    self._last_id = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():
                retry = int(value)
        if not data:
            return None
        return _event(
            event_type.decode("utf-8", "replace") if event_type else "message",
            b"\n".join(data).decode("utf-8", "replace"),
            self._last_id,
            start,
            end,
            retry,
        )


def _dispatch_length(separator: bytes) -> int:
    """Bytes of a block separator's first two line ends: the last line's end and the blank line."""
    first = 2 if separator.startswith(b"\r\n") else 1
    return first + (2 if separator.startswith(b"\r\n", first) else 1)


# The frozen dataclass's __init__ costs an object.__setattr__ per field; the decoder fills
# the slots directly (the same values, about half the time).
_new_object = object.__new__
_SETTERS = tuple(SSEEvent.__dict__[f.name].__set__ for f in fields(SSEEvent))
_set_event, _set_data, _set_id, _set_retry, _set_start, _set_end = _SETTERS


def _event(
    event: str, data: str, id: str | None, start: int, end: int, retry: int | None = None
) -> SSEEvent:
    new = _new_object(SSEEvent)
    _set_event(new, event)
    _set_data(new, data)
    _set_id(new, id)
    _set_retry(new, retry)
    _set_start(new, start)
    _set_end(new, end)
    return new


def decode_all(body: bytes) -> list[SSEEvent]:
    """Every event of a complete stream (a trailing unterminated block is dropped)."""
    decoder = SSEDecoder()
    return decoder.feed(body) + decoder.close()


def encode(event: SSEEvent) -> bytes:
    """The wire form of one event; `decode_all(encode(e))` gives `e` back (but its offsets)."""
    if any(c in event.event or c in (event.id or "") for c in "\r\n") or "\0" in (event.id or ""):
        raise ValueError(f"SSE event type and id cannot hold CR, LF or NUL: {event!r}")
    if "\r" in event.data:
        raise ValueError(f"SSE data cannot hold a CR (only LF separates data lines): {event!r}")
    if event.retry is not None and event.retry < 0:
        raise ValueError(f"SSE retry must be a non-negative integer: {event!r}")
    lines = []
    if event.event != "message":
        lines.append(f"event: {event.event}")
    if event.id is not None:
        lines.append(f"id: {event.id}")
    if event.retry is not None:
        lines.append(f"retry: {event.retry}")
    lines.extend(f"data: {line}" for line in event.data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()
