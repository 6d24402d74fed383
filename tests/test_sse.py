"""streambench.sse: WHATWG event-stream rules, byte offsets, chunking independence, encoding."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streambench
from streambench.sse import SSEDecoder, SSEEvent, decode_all, encode

# Every test runs twice: with the C accelerator of simple blocks and without it.
pytestmark = pytest.mark.usefixtures("sse_impl")

BOM = b"\xef\xbb\xbf"


def fields(events: list[SSEEvent]) -> list[tuple[str, str, str | None, int | None]]:
    return [(e.event, e.data, e.id, e.retry) for e in events]


def feed_chunks(chunks: list[bytes]) -> tuple[list[SSEEvent], bytes]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.close(), decoder.tail


def split_at(body: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]


def spec_fields(body: bytes) -> list[tuple[str, str, str | None, int | None]]:
    """A literal transcription of the WHATWG algorithm on the decoded text (no offsets)."""
    text = body.decode("utf-8", "replace").removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)[:-1]  # the last piece has no line end: never processed
    events: list[tuple[str, str, str | None, int | None]] = []
    event_type, data, last_id, retry = "", "", None, None
    for line in lines:
        if not line:
            if data:
                events.append((event_type or "message", data.removesuffix("\n"), last_id, retry))
            event_type, data, retry = "", "", None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event_type = value
        elif name == "data":
            data += value + "\n"
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = int(value)
    return events


# --- the rules, one by one ---------------------------------------------------------------


def test_reexported_from_package() -> None:
    assert streambench.SSEDecoder is SSEDecoder
    assert streambench.SSEEvent is SSEEvent
    assert streambench.encode is encode
    assert streambench.decode_all is decode_all


def test_event_fields_and_offsets() -> None:
    body = b"event: ping\ndata: {}\n\ndata: two\n\n"
    assert decode_all(body) == [
        SSEEvent("ping", "{}", None, None, 0, 22),
        SSEEvent("message", "two", None, None, 22, 33),
    ]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_every_line_end_kind(eol: bytes) -> None:
    body = b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    events = decode_all(body)
    assert fields(events) == [("message", "a\nb", None, None), ("message", "c", None, None)]
    assert events[1].start == 2 * len(b"data: a") + 3 * len(eol)
    assert events[1].end == len(body)


def test_mixed_line_ends() -> None:
    assert fields(decode_all(b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r")) == [
        ("message", "a\nb\nc", None, None),
        ("message", "d", None, None),
    ]


def test_cr_then_lf_in_the_next_chunk_is_one_line_end() -> None:
    events, _ = feed_chunks([b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"])
    assert events == [
        SSEEvent("message", "a", None, None, 0, 11),
        SSEEvent("message", "b", None, None, 11, 22),
    ]


def test_held_back_cr_is_dispatched_by_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == []  # the second CR may still be half of a CRLF
    assert decoder.close() == [SSEEvent("message", "a", None, None, 0, 9)]
    assert decoder.tail == b""


def test_bom_at_stream_start_is_stripped_and_counted_in_offsets() -> None:
    events, _ = feed_chunks([BOM[:1], BOM[1:] + b"data: x\n\n"])
    assert events == [SSEEvent("message", "x", None, None, 3, 12)]


def test_bom_later_in_the_stream_is_content() -> None:
    body = b"data: a\n\n" + BOM + b"data: b\n\n" + b"data: " + BOM + b"\n\n"
    assert fields(decode_all(body)) == [
        ("message", "a", None, None),
        ("message", "\ufeff", None, None),
    ]


def test_comment_lines_are_ignored() -> None:
    body = b": keep-alive\n\n:x\ndata: a\n: mid\ndata: b\n\n"
    events = decode_all(body)
    assert fields(events) == [("message", "a\nb", None, None)]
    assert events[0].start == len(b": keep-alive\n\n")


def test_field_without_colon_has_an_empty_value() -> None:
    assert fields(decode_all(b"data\ndata\n\n")) == [("message", "\n", None, None)]
    assert fields(decode_all(b"event\ndata: x\n\n")) == [("message", "x", None, None)]


def test_only_one_leading_space_is_stripped() -> None:
    body = b"data:no-space\n\ndata:  two spaces \n\nevent:  e\ndata:x\n\n"
    assert fields(decode_all(body)) == [
        ("message", "no-space", None, None),
        ("message", " two spaces ", None, None),
        (" e", "x", None, None),
    ]


def test_multi_line_data_is_joined_with_lf() -> None:
    assert decode_all(b"data: 1\ndata:\ndata: 3\n\n")[0].data == "1\n\n3"


def test_unknown_fields_are_ignored() -> None:
    assert fields(decode_all(b"foo: bar\ndata: x\nDATA: y\n\n")) == [("message", "x", None, None)]


def test_last_event_id_persists_and_nul_ids_are_ignored() -> None:
    body = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\0x\ndata: c\n\nid\ndata: d\n\n"
    assert [e.id for e in decode_all(body)] == ["1", "1", "1", ""]


def test_id_set_in_a_block_without_data_persists() -> None:
    assert [e.id for e in decode_all(b"id: 7\n\ndata: a\n\n")] == ["7"]


@pytest.mark.parametrize(
    ("value", "retry"),
    [(b"3000", 3000), (b"0", 0), (b"", None), (b"-1", None), (b"1.5", None), (b" 1", None)],
)
def test_retry_only_when_all_ascii_digits(value: bytes, retry: int | None) -> None:
    [event] = decode_all(b"retry: " + value + b"\ndata: x\n\n")
    assert event.retry == retry


def test_retry_in_a_block_without_data_sets_the_reconnection_time() -> None:
    decoder = SSEDecoder()
    assert decoder.retry_ms is None
    assert decoder.feed(b"retry: 3000\n\n") == []  # a server's reconnection preamble
    assert decoder.retry_ms == 3000
    decoder.feed(b"retry: 1.5\n\nretry: 250\ndata: x\n\n")
    assert decoder.retry_ms == 250  # (an invalid value leaves it as it was)
    decoder.feed(b"retry: 9\n")  # not a complete block yet
    assert decoder.retry_ms == 250


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_last_event_id_is_readable_with_no_event_after_it(eol: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.last_event_id is None
    events = decoder.feed(b"id: 1" + eol + b"data: a" + eol + eol + b"id: 2" + eol + eol)
    events += decoder.feed(b"id: 3" + eol)  # (a lone CR waits for the next byte)
    assert [e.id for e in events] == ["1"]
    assert decoder.last_event_id == "2"
    decoder.close()  # an unterminated block sets nothing
    assert decoder.last_event_id == "2"


def test_no_dispatch_without_data_but_the_event_type_resets() -> None:
    events = decode_all(b"event: ping\n\ndata: x\n\nevent: e\nretry: 5\n\n")
    assert fields(events) == [("message", "x", None, None)]


def test_trailing_block_without_blank_line_is_the_tail() -> None:
    decoder = SSEDecoder()
    assert len(decoder.feed(b"data: a\n\ndata: b\n")) == 1
    assert decoder.close() == []
    assert decoder.tail == b"data: b\n"


def test_tail_is_empty_after_a_complete_stream() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: a\n\n")
    decoder.close()
    assert decoder.tail == b""


def test_invalid_utf8_becomes_replacement_characters() -> None:
    body = b"event: \xff\ndata: a\xe2\x82\ndata: \xc3\n\n"
    assert fields(decode_all(body)) == [("\ufffd", "a\ufffd\n\ufffd", None, None)]


def test_multibyte_character_split_across_chunks() -> None:
    body = "data: größe €😀\n\n".encode()
    for cut in range(len(body) + 1):
        events, _ = feed_chunks([body[:cut], body[cut:]])
        assert events == [SSEEvent("message", "größe €😀", None, None, 0, len(body))]


def test_empty_chunks_are_harmless() -> None:
    events, _ = feed_chunks([b"", b"data: a\n", b"", b"\n", b""])
    assert fields(events) == [("message", "a", None, None)]


# --- encoding ----------------------------------------------------------------------------


def test_encode_wire_form() -> None:
    assert encode(SSEEvent(data="a\nb")) == b"data: a\ndata: b\n\n"
    wire = b"event: delta\nid: 7\nretry: 100\ndata:  x\n\n"
    assert encode(SSEEvent("delta", " x", "7", 100)) == wire


@pytest.mark.parametrize(
    "event",
    [
        SSEEvent(event="a\nb", data="x"),
        SSEEvent(id="1\r", data="x"),
        SSEEvent(id="\0", data="x"),
        SSEEvent(data="a\rb"),
        SSEEvent(data="x", retry=-1),
        SSEEvent("", "x"),  # `event: ` would decode as "message"
    ],
)
def test_encode_refuses_what_cannot_round_trip(event: SSEEvent) -> None:
    with pytest.raises(ValueError, match="SSE"):
        encode(event)


field_text = st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)))


@given(
    event_type=field_text.filter(bool),
    data=st.lists(field_text, min_size=1).map("\n".join),
    event_id=st.none() | field_text,
    retry=st.none() | st.integers(min_value=0, max_value=10**12),
)
def test_encode_decode_round_trip(
    event_type: str, data: str, event_id: str | None, retry: int | None
) -> None:
    wire = encode(SSEEvent(event_type, data, event_id, retry))
    assert decode_all(wire) == [SSEEvent(event_type, data, event_id, retry, 0, len(wire))]


# --- any split, same events --------------------------------------------------------------

line_ends = st.sampled_from([b"\n", b"\r", b"\r\n"])
values = st.lists(
    st.sampled_from([b"x", b" ", b":", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xff"])
    | st.sampled_from([b"\xe2\x82", b"\xf0\x9f", b"\0", b"12", b"\xef\xbb\xbf"]),
    max_size=4,
).map(b"".join)
names = st.sampled_from([b"data", b"data", b"event", b"id", b"retry", b"", b"other"])
lines = st.one_of(
    st.tuples(names, st.sampled_from([b":", b": ", b":  "]), values).map(b"".join),
    names,
    st.just(b""),
)


@st.composite
def sse_streams(draw: st.DrawFn) -> bytes:
    """Bytes of an event stream with every kind of line end, BOM, comments, invalid UTF-8.

    Example: b'\\xef\\xbb\\xbfdata: \\xc3\\xa9\\r\\n:\\r\\rid\\n'
    """
    parts = [BOM] if draw(st.booleans()) else []
    for line in draw(st.lists(lines, max_size=14)):
        parts += [line, draw(line_ends)]
    if draw(st.booleans()):
        parts.append(draw(values))  # an unterminated last line
    return b"".join(parts)


@st.composite
def streams_and_splits(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    body = draw(sse_streams())
    cuts = draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=12))
    return body, split_at(body, cuts)


@settings(max_examples=400)
@given(streams_and_splits())
def test_same_events_for_any_split(body_and_chunks: tuple[bytes, list[bytes]]) -> None:
    body, chunks = body_and_chunks
    whole, whole_tail = feed_chunks([body])
    assert feed_chunks(chunks) == (whole, whole_tail)
    assert feed_chunks([bytes([b]) for b in body]) == (whole, whole_tail)


@settings(max_examples=400)
@given(sse_streams())
def test_fields_match_the_spec_algorithm(body: bytes) -> None:
    assert fields(decode_all(body)) == spec_fields(body)


@settings(max_examples=200)
@given(sse_streams())
def test_offsets_delimit_the_dispatching_block(body: bytes) -> None:
    events, tail = feed_chunks([body])
    previous_end = 0
    for index, event in enumerate(events):
        assert previous_end <= event.start < event.end <= len(body)
        assert body[event.start] not in b"\r\n"
        assert body[event.end - 1] in b"\r\n"
        # the event's block is the first complete one after the previous dispatch
        assert decode_all(body[: event.end])[index:] == [event]
        assert decode_all(body[: event.start]) == events[:index]
        previous_end = event.end
    assert body.endswith(tail)
    assert len(body) - len(tail) >= previous_end
    assert len(decode_all(tail + b"\n\n")) <= 1  # the tail holds at most one unfinished block


# --- provider-shaped streams: runs of simple blocks (the accelerated path) ---------------

simple_values = st.lists(
    st.sampled_from([b"x", b" ", b":", b'{"a": 1}', b"\xc3\xa9", b"\xf0\x9f\x98\x80", b"\0"])
    | st.sampled_from([b"event: ", b"data: ", b"\xe2\x82", b"\xef\xbb\xbf", b"\xff"]),
    max_size=5,
).map(b"".join)
event_types = st.sampled_from([b"", b"ping", b"content_block_delta", b"\xff", b" x", b"message"])
other_blocks = st.sampled_from(
    [b": keep-alive", b"id: 7", b"retry: 10", b"data", b"event: x", b"data: a\ndata: b", b"data:x"]
)


@st.composite
def provider_streams(draw: st.DrawFn) -> bytes:
    """Runs of `event: ...`/`data: ...` blocks with one line-end style, now and then another
    block shape, a stray blank line or a switch of line-end style."""
    parts = [BOM] if draw(st.booleans()) else []
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["simple"] * 6 + ["other", "blank", "switch"]))
        if kind == "switch":
            eol = b"\r\n" if eol == b"\n" else b"\n"
            continue
        if kind == "blank":
            parts.append(eol)
            continue
        if kind == "other":
            block = draw(other_blocks)
        else:
            event_type = draw(st.none() | event_types)
            lines = [] if event_type is None else [b"event: " + event_type]
            block = b"\n".join([*lines, b"data: " + draw(simple_values)])
        parts.append(block.replace(b"\n", eol) + eol + eol)
    return b"".join(parts)


@settings(max_examples=300)
@given(provider_streams(), st.lists(st.integers(min_value=0, max_value=4096), max_size=8))
def test_provider_shaped_streams_follow_the_spec_at_any_split(body: bytes, cuts: list[int]) -> None:
    events, _ = feed_chunks(split_at(body, [c % (len(body) + 1) for c in cuts]))
    assert fields(events) == spec_fields(body)
    assert events == feed_chunks([bytes([b]) for b in body])[0] == decode_all(body)
