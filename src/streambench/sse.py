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
from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEEvent", "decode_all", "encode"]

_BOM = b"\xef\xbb\xbf"
# A maximal run of line-end bytes; it holds a blank line when it is more than one line end.
_LINE_END_RUN = re.compile(rb"[\r\n]+")
_SINGLE_LINE_ENDS = (b"\r", b"\n", b"\r\n")
_LINE = re.compile(rb"([^\r\n]*)(?:\r\n|\r|\n)")


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
        if b"\r" in chunk:
            self._has_cr = True
        end = self._complete_end(final=False)
        return self._take(end) if end else []

    def close(self) -> list[SSEEvent]:
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
        self._offset += end
        self._scan = 0
        self._has_cr = b"\r" in buf
        if offset == 0 and region.startswith(_BOM):
            region = region[len(_BOM) :]
            offset = len(_BOM)
        events = []
        lines: list[bytes] = []
        start = offset
        for match in _LINE.finditer(region):
            line = match.group(1)
            if line:
                if not lines:
                    start = offset + match.start()
                lines.append(line)
            elif lines:
                event = self._dispatch(lines, start, offset + match.end())
                if event is not None:
                    events.append(event)
                lines = []
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
        return SSEEvent(
            event_type.decode("utf-8", "replace") if event_type else "message",
            b"\n".join(data).decode("utf-8", "replace"),
            self._last_id,
            retry,
            start,
            end,
        )


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
