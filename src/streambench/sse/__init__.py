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
from itertools import accumulate, islice, repeat
from operator import add
from types import ModuleType
from typing import NamedTuple

try:  # the C accelerator of simple blocks, built at install when a compiler is there
    from streambench.sse import _speedups
except ImportError:  # pragma: no cover - exercised by installs without a compiler
    _speedups = None

__all__ = ["SSEDecoder", "SSEEvent", "decode_all", "encode"]

_BOM = b"\xef\xbb\xbf"
_SINGLE_LINE_ENDS = (b"\r", b"\n", b"\r\n")
_LINE_END_BYTES = b"\r\n"
# A line end followed by blank lines: what separates blocks (a CR before LF is never alone).
_BLOCK_SEPARATOR = re.compile(rb"((?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)+)")
_LINE_END = re.compile(rb"\r\n|\r|\n")
# Simple blocks: one `data: ` line, maybe after one `event: ` line (nearly every block a
# provider sends), with LF or with CRLF line ends. Groups: the event line (b"" when there
# is none) and the data value; a block is their lengths plus the fixed bytes (8 or 10).
# (`.` is any byte but LF, the fastest loop of the regex engine.)
_SIMPLE_LF = re.compile(rb"((?:event: .*\n)?)data: (.*)\n\n")
_SIMPLE_CRLF = re.compile(rb"((?:event: .*\r\n)?)data: (.*)\r\n\r\n")
_SIMPLE_RUN = re.compile(rb"(?:(?:event: .*\n)?data: .*\n\n)*")
_FIXED_BYTES = {_SIMPLE_LF: 8, _SIMPLE_CRLF: 10}
_MAX_CACHED_TYPES = 1024  # distinct event types remembered per decoder


class SSEEvent(NamedTuple):
    """One dispatched event; `start`/`end` are byte offsets in the whole stream (BOM included).

    A named tuple: immutable, hashable, and built by the decoder in C-level batches.
    """

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
    the stream never terminated, which is not dispatched. `retry_ms` and `last_event_id`
    are what a reconnecting client needs, set by complete blocks with or without data.
    """

    __slots__ = (
        "_buf", "_has_cr", "_last_id", "_offset", "_scan", "_type_names", "retry_ms", "tail"
    )  # fmt: skip

    def __init__(self) -> None:
        self._buf = bytearray()
        self._offset = 0  # stream offset of self._buf[0], always at a block boundary
        self._scan = 0  # where the CR-aware blank-line search resumes in self._buf
        self._has_cr = False  # self._buf holds a CR: use the general line-end search
        self._last_id: str | None = None
        self._type_names: dict[bytes, str] = {b"": "message"}
        self.retry_ms: int | None = None  # the reconnection time the last `retry:` field set
        self.tail = b""

    @property
    def last_event_id(self) -> str | None:
        """The last event ID so far (for ``Last-Event-ID`` on reconnect), also when the block
        that set it carried no data and dispatched no event."""
        return self._last_id

    def _feed_python(self, chunk: bytes) -> list[SSEEvent]:
        """The events that ``chunk`` completes, in stream order.

        (In Python: the C accelerator's ``feed`` hands it every case but the common LF-only
        one past the stream start; without the accelerator it is ``feed`` itself.)
        """
        # (13 is CR and 10 is LF: an int needle is one memchr, a bytes needle costs ten times
        # as much, and feed runs once per network read.)
        buf = self._buf
        buf += chunk
        if 13 in chunk or self._has_cr:
            end = self._complete_end(final=False)
            events = self._take(end) if end else []
            self._has_cr = 13 in buf
            return events
        # Fast path, LF only: a blank line is b"\n\n". The buffer held none before this chunk
        # (they are cut off as they come), so it is in the chunk or straddles its start.
        if 10 not in chunk:
            return []
        first = buf.find(b"\n\n", -1 - len(chunk))  # (a negative start counts from the end)
        if first < 0:
            return []
        end = buf.rfind(b"\n\n", first) + 2
        if first + 2 == end:  # one block: small chunks complete one event at a time
            return self._take_block(end)
        return self._take(end)

    feed = _feed_python  # the C accelerator's feed replaces it when built (see _install)

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
        """Like _take for a buffer start that holds one LF-only block ending at `end`."""
        buf = self._buf
        offset = self._offset
        # (At the stream start a BOM may come first: _take sees to it.)
        match = _SIMPLE_LF.fullmatch(buf, 0, end) if offset else None
        if match is None:
            return self._take(end)
        event_line, data = match.groups()  # (before the buffer changes under the match)
        del buf[:end]
        self._offset = offset + end
        self._scan = 0
        names = self._type_names
        name = names[event_line] if event_line in names else self._type_name(event_line)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            text = data.decode("utf-8", "replace")
        return [_tuple_new(SSEEvent, (name, text, self._last_id, None, offset, offset + end))]

    def _type_name(self, event_line: bytes) -> str:
        """The event type of an `event: ` line with its line end (b"" for none), remembered."""
        names = self._type_names
        if len(names) >= _MAX_CACHED_TYPES:
            names.clear()
            names[b""] = "message"
        value = event_line[7:].rstrip(b"\r\n")
        name = names[event_line] = value.decode("utf-8", "replace") or "message"
        return name

    def _take(self, end: int) -> list[SSEEvent]:
        """Decode the complete blocks in self._buf[:end] and drop them from the buffer."""
        region, offset = self._cut(end)
        return self._decode_region(region, offset)

    def _decode_region(self, region: bytes, offset: int) -> list[SSEEvent]:
        """Events of a region that starts at a block boundary and ends with a blank line."""
        if not offset and region.startswith(_BOM):
            region = region[len(_BOM) :]
            offset = len(_BOM)
        first_cr = region.find(b"\r")
        if first_cr < 0:
            return self._decode_lf(region, offset)
        # The blocks from the first CR to the last: CRLF-only ones are simple too (a provider
        # keeps one line-end style); the LF-only stretches around them stay fast.
        last_cr = region.rfind(b"\r")
        head = region.rfind(b"\n\n", 0, first_cr)
        head = head + 2 if head >= 0 else 0
        if region.endswith(b"\r\n\r\n", 0, last_cr + 2):  # the last CR starts a blank line
            tail = last_cr + 2
        else:
            tail = region.find(b"\n\n", last_cr)
            tail = tail + 2 if tail >= 0 else len(region)
        middle = region[head:tail]
        events = self._decode_lf(region[:head], offset)  # (first: its `id:` lines count)
        simple = None
        if middle.count(b"\r\n") == middle.count(b"\r") == middle.count(b"\n"):
            simple = self._decode_simple(_SIMPLE_CRLF, middle, offset + head)
        events += simple if simple is not None else self._decode_general(middle, offset + head)
        return events + self._decode_lf(region[tail:], offset + tail)

    def _decode_lf(self, region: bytes, offset: int) -> list[SSEEvent]:
        """Events of an LF-only region that starts at a block boundary and ends with one."""
        events = self._decode_simple(_SIMPLE_LF, region, offset)
        if events is not None:
            return events
        # Runs of simple blocks between other ones (or stray blank lines).
        events = []
        pos = 0
        size = len(region)
        while pos < size:
            run_end = _SIMPLE_RUN.match(region, pos).end()  # type: ignore[union-attr]
            if run_end > pos:
                run = self._decode_simple(_SIMPLE_LF, region[pos:run_end], offset + pos, True)
                assert run is not None  # (the regex matched the run: it is simple)
                events += run
                pos = run_end
                continue
            end = region.find(b"\n\n", pos)  # the end of this other block; none: blank lines
            end = end + 2 if end >= 0 else size
            events += self._decode_general(region[pos:end], offset + pos)
            pos = end
        return events

    def _decode_simple(
        self, pattern: re.Pattern[bytes], region: bytes, offset: int, matched: bool = False
    ) -> list[SSEEvent] | None:
        """The events of a region of simple blocks only, None when it holds anything else.

        The C accelerator when built; else one regex split: its captures are the event lines
        and data values, and the text between matches must be empty. (`matched`: the caller
        knows the region matches the pattern, so the regex is the fallback of the C part.)
        """
        if _speedups is not None:
            crlf = pattern is _SIMPLE_CRLF
            events = _speedups.simple_events(region, len(region), offset, self._last_id, crlf)
            if events is not None or not matched:
                return events
        parts = pattern.split(region)  # [between, event line, data, between, ...]
        if len(parts) == 1 or any(parts[::3]):
            return None
        event_lines = parts[1::3]
        datas = parts[2::3]
        sizes = map(add, map(len, event_lines), map(len, datas))
        bounds = list(accumulate(map(add, sizes, repeat(_FIXED_BYTES[pattern])), initial=offset))
        return self._batch_events(event_lines, datas, bounds)

    def _batch_events(
        self, event_lines: list[bytes], datas: list[bytes], bounds: list[int]
    ) -> list[SSEEvent]:
        """Events of simple blocks, built with C-level loops (the hot path of the decoder)."""
        names = self._type_names
        last_id = self._last_id
        try:  # known event types and valid UTF-8: nothing but C loops
            rows = zip(
                map(names.__getitem__, event_lines),
                map(bytes.decode, datas),
                repeat(last_id),
                repeat(None),
                bounds,
                islice(bounds, 1, None),
                strict=False,  # bounds has one more item
            )
            return list(map(_tuple_new, repeat(SSEEvent), rows))
        except (KeyError, UnicodeDecodeError):
            type_names = [names.get(line) or self._type_name(line) for line in event_lines]
            texts = [data.decode("utf-8", "replace") for data in datas]
            rows = zip(type_names, texts, repeat(last_id), repeat(None), bounds, bounds[1:])
            return list(map(_tuple_new, repeat(SSEEvent), rows))

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
                retry = self.retry_ms = int(value)
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


_tuple_new = tuple.__new__  # SSEEvent(*fields) without the keyword-handling __new__


def _install(speedups: ModuleType | None) -> None:
    """Run the decoder with the C accelerator ``speedups`` or, for None, in pure Python
    (tests and benchmarks run both; the module global and ``SSEDecoder.feed`` go together)."""
    global _speedups
    _speedups = speedups
    if speedups is None:
        SSEDecoder.feed = SSEDecoder._feed_python  # type: ignore[method-assign]
        return
    speedups.init(SSEEvent)
    # One C call per read, no Python frame: the call overhead is the cost at small chunks.
    SSEDecoder.feed = speedups.decoder_feed(SSEDecoder, SSEDecoder._feed_python)  # type: ignore[method-assign]


_install(_speedups)


def _new_event(
    event: str, data: str, id: str | None, start: int, end: int, retry: int | None = None
) -> SSEEvent:
    return _tuple_new(SSEEvent, (event, data, id, retry, start, end))


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
    if not event.event:
        raise ValueError(
            f"SSE event type cannot be empty (it would decode as 'message'): {event!r}"
        )
    lines = []
    if event.event != "message":
        lines.append(f"event: {event.event}")
    if event.id is not None:
        lines.append(f"id: {event.id}")
    if event.retry is not None:
        lines.append(f"retry: {event.retry}")
    lines.extend(f"data: {line}" for line in event.data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()
