"""streambench.sse against the anthropic SDK's decoder on every real stream, at every chunk size.

Short form (suite budget): every chunk size 1..32, a geometric spread above (x1.3), and the
whole body. STREAMBENCH_FULL=1: literally every size from 1 byte to the whole body (O(n^2):
the 88 bodies' squared lengths sum to ~3e11 bytes, hours of CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from anthropic._streaming import SSEDecoder as AnthropicDecoder
from tests.conftest import SSE_IMPLEMENTATIONS, corpus_files, speedups_built, sse_implementation

from streambench.sse import SSEDecoder

FULL = os.environ.get("STREAMBENCH_FULL") == "1"
# (tests/test_sse_speedups.py fails when CI wants the C part and it is not built)
IMPLEMENTATIONS = [i for i in SSE_IMPLEMENTATIONS if i != "c" or speedups_built()]

Fields = list[tuple[str, str, str | None]]


def cassette_bodies(path: Path) -> list[bytes]:
    cassette = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [i["response"]["body"]["string"].encode() for i in cassette["interactions"]]


def chunk_sizes(body_bytes: int) -> list[int]:
    if FULL:
        return list(range(1, body_bytes + 1))
    sizes = set(range(1, min(32, body_bytes) + 1))
    size = 33
    while size < body_bytes:
        sizes.add(size)
        size = size * 13 // 10
    return sorted(sizes | {body_bytes})


def chunked(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def anthropic_fields(chunks: list[bytes]) -> Fields:
    # The SDK reports the default event type as None where the spec (and we) say "message".
    return [
        (e.event or "message", e.data, e.id) for e in AnthropicDecoder().iter_bytes(iter(chunks))
    ]


def our_fields(chunks: list[bytes]) -> Fields:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return [(e.event, e.data, e.id) for e in events + decoder.close()]


def test_corpus_is_there(corpus_dir: Path) -> None:
    assert len(corpus_files()) == 88


@pytest.mark.parametrize("cassette", corpus_files(), ids=lambda p: p.stem)
def test_same_events_as_anthropic_sdk_at_every_chunk_size(cassette: Path) -> None:
    for body in cassette_bodies(cassette):
        expected = anthropic_fields([body])
        assert expected, "every corpus stream has events"
        for size in chunk_sizes(len(body)):
            chunks = chunked(body, size)
            assert anthropic_fields(chunks) == expected, size
            for implementation in IMPLEMENTATIONS:  # ours, with and without the C part
                with sse_implementation(implementation):
                    assert our_fields(chunks) == expected, (implementation, size)
