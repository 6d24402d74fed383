"""The C accelerator of streambench.sse: what it accepts, what it leaves to Python, its
errors and its reference counting. (Equality with the pure-Python decoder on every stream
shape is tested by tests/test_sse.py and tests/test_sse_corpus.py, which run on both.)"""

from __future__ import annotations

import sys

import pytest
from tests.conftest import skip_unless_speedups

from streambench.sse import SSEEvent

skip_unless_speedups(allow_module_level=True)

from streambench.sse import _speedups as speedups  # noqa: E402


def simple(body: bytes | bytearray, offset: int = 100, crlf: bool = False) -> list | None:
    return speedups.simple_events(body, len(body), offset, "7", crlf)


def test_a_run_of_simple_blocks_becomes_events_with_stream_offsets() -> None:
    body = b"event: ping\ndata: {}\n\ndata: caf\xc3\xa9\n\nevent: \ndata: \n\n"
    assert simple(body) == [
        SSEEvent("ping", "{}", "7", None, 100, 122),
        SSEEvent("message", "café", "7", None, 122, 135),
        SSEEvent("message", "", "7", None, 135, 151),
    ]
    assert all(type(event) is SSEEvent for event in simple(body) or [])


def test_crlf_blocks_when_asked() -> None:
    body = b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n"
    assert simple(body, crlf=True) == [
        SSEEvent("a", "1", "7", None, 100, 121),
        SSEEvent("message", "2", "7", None, 121, 132),
    ]
    assert simple(body) is None  # CRLF blocks are not LF blocks
    assert simple(b"data: 1\n\n", crlf=True) is None


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert simple(b"event: \xff\ndata: a\xffb\n\n") == [
        SSEEvent("\ufffd", "a\ufffdb", "7", None, 100, 120)
    ]


def test_a_bytearray_and_a_prefix_of_it() -> None:
    buffer = bytearray(b"data: x\n\ndata: y")
    assert speedups.simple_events(buffer, 9, 0, None, False) == [
        SSEEvent("message", "x", None, None, 0, 9)
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b": comment\n\n",
        b"id: 1\ndata: x\n\n",
        b"data: a\ndata: b\n\n",
        b"data:x\n\n",
        b"event:x\ndata: y\n\n",
        b"event: x\n\n",
        b"data: x\n\n\n",
        b"data: x\rdata: y\n\n",
        b"data: x\n",
        b"data: x\n\nretry: 5\n\n",
        b"\ndata: x\n\n",
        b"event: a\nevent: b\ndata: x\n\n",
    ],
)
def test_anything_else_is_left_to_python(body: bytes) -> None:
    result = simple(body)
    assert result is None or (body == b"" and result == [])


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="stop"):
        speedups.simple_events(b"data: x\n\n", 99, 0, None, False)
    with pytest.raises(TypeError):
        speedups.simple_events(b"data: x\n\n", 9, 0, None)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        speedups.simple_events("data: x\n\n", 9, 0, None, False)
    with pytest.raises(TypeError):
        speedups.init(int)


def test_no_reference_leaks() -> None:
    last_id = "an id nobody else holds"
    body = b"event: delta\ndata: x\n\n" * 50 + b"data: y\n\n"
    before = sys.getrefcount(last_id)
    for _ in range(2000):
        assert simple(body) is not None
        assert simple(body + b": not simple\n\n") is None
    assert sys.getrefcount(last_id) == before


def test_feed_is_the_c_method_and_hands_other_cases_to_python() -> None:
    from streambench.sse import SSEDecoder

    assert SSEDecoder.feed is not SSEDecoder._feed_python  # the accelerator is installed
    stream = b"data: a\n\nevent: x\ndata: b\n\nid: 7\ndata: c\n\ndata: d\r\n\r\ndata: e\n\n"
    expected = SSEDecoder()._feed_python(stream)
    for chunk_type in (bytes, bytearray, memoryview):  # only bytes take the C step
        decoder = SSEDecoder()
        events = []
        for i in range(0, len(stream), 5):
            events += decoder.feed(chunk_type(stream[i : i + 5]))
        assert events + decoder.close() == expected
    with pytest.raises(TypeError):
        SSEDecoder().feed("data: x\n\n")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        SSEDecoder().feed()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        SSEDecoder.feed(object(), b"data: x\n\n")  # type: ignore[arg-type]


def test_feed_leaks_no_references() -> None:
    from streambench.sse import SSEDecoder

    chunks = [b"data: x\n\nevent: delta\ndata: y\n", b"\n: not simple\n\ndata: z\n\n"] * 5
    decoder = SSEDecoder()
    decoder.feed(b"data: start\n\n")
    last_id = decoder._last_id = "an id nobody else holds"
    before = sys.getrefcount(last_id)
    events = [decoder.feed(chunk) for _ in range(200) for chunk in chunks]
    assert sum(map(len, events)) == 200 * 5 * 3
    del events
    assert sys.getrefcount(last_id) == before
