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
from collections import deque
from dataclasses import dataclass, fields
from itertools import islice, repeat

__all__ = ["SSEDecoder", "SSEEvent", "decode_all", "encode"]

_BOM = b"\xef\xbb\xbf"
_SINGLE_LINE_ENDS = (b"\r", b"\n", b"\r\n")
_LINE_END_BYTES = b"\r\n"
# A line end followed by blank lines: what separates blocks (a CR before LF is never alone).
_BLOCK_SEPARATOR = re.compile(rb"((?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)+)")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_LF = ord("\n")
_MAX_CACHED_TYPES = 1024  # distinct event types remembered per decoder


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
        self._type_names: dict[bytes, str] = {b"": "message"}
        self.tail = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf
        buf += chunk
        if self._has_cr or b"\r" in chunk:
            end = self._complete_end(final=False)
            events = self._take(end) if end else []
            self._has_cr = b"\r" in buf
            return events
        # Fast path, LF only: a blank line is b"\n\n", and it may straddle the chunks.
        if b"\n" not in chunk:
            return []
        first = buf.find(b"\n\n", self._scan)
        if first < 0:
            self._scan = len(buf) - 1 if buf else 0
            return []
        last = buf.rfind(b"\n\n", first)
        if first == last:  # one block: small chunks complete one event at a time
            return self._take_block(last + 2)
        return self._take(last + 2)

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
        floor = self._scan
        pos = limit
        # Walk the runs of line-end bytes backwards (the tail is short): the last run that
        # holds more than one line end ends with a blank line.
        while (last := max(buf.rfind(b"\n", floor, pos), buf.rfind(b"\r", floor, pos))) >= 0:
            first = last
            while first > floor and buf[first - 1] in _LINE_END_BYTES:
                first -= 1
            # The buffer starts at a line start, so a run there is all blank lines.
            if first == 0 or bytes(buf[first : last + 1]) not in _SINGLE_LINE_ENDS:
                return last + 1
            pos = first
        # The trailing run (at most CRLF without a blank line) may continue next time.
        self._scan = max(0, limit - 2)
        return 0

    def _cut(self, end: int) -> tuple[bytes, int]:
        """Remove self._buf[:end] (complete blocks); return it with its stream offset."""
        buf = self._buf
        region = bytes(buf[:end])
        del buf[:end]
        offset = self._offset
        self._offset = offset + end
        self._scan = 0
        return region, offset

    def _take_block(self, end: int) -> list[SSEEvent]:
        """Like _take for an LF-only buffer start that holds one block ending at `end`."""
        region, offset = self._cut(end)
        data_end = end - 2
        if offset:  # (the stream start may hold a BOM: _take deals with it)
            if region.startswith(b"data: "):
                if region.find(b"\n") == data_end:
                    return [self._simple_event(b"", region[6:data_end], offset, offset + end)]
            elif region.startswith(b"event: "):
                eol = region.find(b"\n")
                if (
                    eol > 7
                    and region.startswith(b"data: ", eol + 1)
                    and region.find(b"\n", eol + 1) == data_end
                ):
                    event_type = region[7:eol]
                    return [
                        self._simple_event(
                            event_type, region[eol + 7 : data_end], offset, offset + end
                        )
                    ]
        return self._decode_region(region, offset)

    def _simple_event(self, event_type: bytes, data: bytes, start: int, end: int) -> SSEEvent:
        """The event of a simple block, from its event line's value (b"" for none) and data."""
        names = self._type_names
        name = names.get(event_type)
        if name is None:
            name = event_type.decode("utf-8", "replace")
            if len(names) < _MAX_CACHED_TYPES:
                names[event_type] = name
        try:
            text = data.decode()
        except UnicodeDecodeError:
            text = data.decode("utf-8", "replace")
        event = _new_object(SSEEvent)
        _set_event(event, name)
        _set_data(event, text)
        _set_id(event, self._last_id)
        _set_retry(event, None)
        _set_start(event, start)
        _set_end(event, end)
        return event

    def _take(self, end: int) -> list[SSEEvent]:
        """Decode the complete blocks in self._buf[:end] and drop them from the buffer."""
        region, offset = self._cut(end)
        return self._decode_region(region, offset)

    def _decode_region(self, region: bytes, offset: int) -> list[SSEEvent]:
        """Events of a region that starts at a block boundary and ends with a blank line."""
        if not offset and region.startswith(_BOM):
            region = region[len(_BOM) :]
            offset = len(_BOM)
        events: list[SSEEvent] = []
        pos = 0
        # Only the blocks around CRs need the general parser; LF-only stretches stay fast.
        while (first_cr := region.find(b"\r", pos)) >= 0:
            head = region.rfind(b"\n\n", pos, first_cr)
            head = head + 2 if head >= 0 else pos
            last_cr = first_cr
            tail = region.find(b"\n\n", last_cr)
            while tail >= 0 and (later_cr := region.rfind(b"\r", last_cr + 1, tail)) >= 0:
                last_cr = later_cr
                tail = region.find(b"\n\n", last_cr)
            tail = tail + 2 if tail >= 0 else len(region)
            events += self._decode_lf(region[pos:head], offset + pos)
            events += self._decode_general(region[head:tail], offset + head)
            pos = tail
        return events + self._decode_lf(region[pos:], offset + pos)

    def _decode_lf(self, region: bytes, offset: int) -> list[SSEEvent]:
        """Events of an LF-only region that starts at a block boundary and ends with one."""
        # Almost every block is one `data: ` line, maybe after an `event: ` line: those are
        # recognised inline and their events built in batches; others go to _decode_general.
        events: list[SSEEvent] = []
        types: list[bytes] = []  # the event line's value, b"" for none
        datas: list[bytes] = []
        bounds = [offset]  # the k-th batched event spans bounds[k]..bounds[k + 1]
        add_type, add_data, add_bound = types.append, datas.append, bounds.append
        find = region.find
        pos = 0
        size = len(region)
        while pos < size:
            head = region[pos : pos + 7]
            if head == b"event: ":
                eol = find(b"\n", pos)
                if eol > pos + 7 and region[eol + 1 : eol + 7] == b"data: ":
                    data_eol = find(b"\n", eol + 7)
                    if region[data_eol + 1] == _LF:
                        add_type(region[pos + 7 : eol])
                        add_data(region[eol + 7 : data_eol])
                        pos = data_eol + 2
                        add_bound(offset + pos)
                        continue
            elif head[:6] == b"data: ":
                eol = find(b"\n", pos)
                if region[eol + 1] == _LF:
                    add_type(b"")
                    add_data(region[pos + 6 : eol])
                    pos = eol + 2
                    add_bound(offset + pos)
                    continue
            end = find(b"\n\n", pos)  # the end of this other block; none: only blank lines
            end = end + 2 if end >= 0 else size
            events += self._batch_events(types, datas, bounds)
            events += self._decode_general(region[pos:end], offset + pos)
            types.clear()
            datas.clear()
            bounds[:] = [offset + end]
            pos = end
        return events + self._batch_events(types, datas, bounds)

    def _batch_events(
        self, types: list[bytes], datas: list[bytes], bounds: list[int]
    ) -> list[SSEEvent]:
        """Events of simple blocks, built with C-level loops (the hot path of the decoder)."""
        names = self._type_names
        try:
            type_names = list(map(names.__getitem__, types))
        except KeyError:
            if len(names) > _MAX_CACHED_TYPES:
                names.clear()
                names[b""] = "message"
            names.update((t, t.decode("utf-8", "replace")) for t in types if t not in names)
            type_names = list(map(names.__getitem__, types))
        try:
            texts = list(map(bytes.decode, datas))
        except UnicodeDecodeError:
            texts = [data.decode("utf-8", "replace") for data in datas]
        if len(texts) < 4:  # setting up the C loops costs more than it saves for a few events
            last_id = self._last_id
            return [
                _new_event(name, text, last_id, bounds[k], bounds[k + 1])
                for k, (name, text) in enumerate(zip(type_names, texts, strict=True))
            ]
        events = list(map(_new_object, repeat(SSEEvent, len(texts))))
        _exhaust(map(_set_event, events, type_names))
        _exhaust(map(_set_data, events, texts))
        _exhaust(map(_set_id, events, repeat(self._last_id)))
        _exhaust(map(_set_retry, events, repeat(None)))
        _exhaust(map(_set_start, events, bounds))
        _exhaust(map(_set_end, events, islice(bounds, 1, None)))
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
        return _new_event(
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
_exhaust = deque(maxlen=0).extend  # runs a map() of setters in C


def _new_event(
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
