"""Transcript files: byte-exact round trip, readable body, one-line errors with the YAML line."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import corpus_files

from streambench import transcript
from streambench.errors import TranscriptError
from streambench.transcript import (
    Meta,
    Request,
    Response,
    Transcript,
    dumps,
    is_cassette,
    load,
    load_inputs,
    loads,
    save,
)

HEADER = "streambench: 1\nmeta:\n  provider: anthropic\n  api: anthropic-messages\n"


def make(body: bytes, chunks: list[tuple[float, int]] | None = None) -> Transcript:
    return Transcript(
        meta=Meta(provider="anthropic", api="anthropic-messages", notes="two\nlines"),
        request=Request(
            url="https://api.anthropic.com/v1/messages",
            headers={"content-type": "application/json", "x-api-key": "<redacted>"},
            body={"model": "claude", "stream": True, "messages": [{"role": "user"}]},
        ),
        response=Response(headers={"content-type": "text/event-stream"}, body=body, chunks=chunks),
    )


def round_trip(t: Transcript) -> list[Transcript]:
    """``t`` saved and loaded back, once with libyaml and once with pure-Python PyYAML."""
    backs = [loads(dumps(t))]
    with (
        mock.patch.object(transcript, "_DUMPER", transcript._PyDumper),
        mock.patch.object(transcript, "_LOADER", yaml.SafeLoader),
    ):
        backs.append(loads(dumps(t)))
    return backs


def chunked(body: bytes, sizes: list[int]) -> list[tuple[float, int]]:
    """Split ``len(body)`` into the given sizes (last chunk takes the rest), 5 ms apart."""
    chunks, left = [], len(body)
    for i, size in enumerate(sizes):
        n = min(size, left)
        chunks.append((5.0 * i, n))
        left -= n
    chunks.append((5.0 * len(sizes), left))
    return chunks


@settings(max_examples=300 if os.environ.get("STREAMBENCH_FULL") else 120, deadline=None)
@given(body=st.binary(max_size=300), sizes=st.lists(st.integers(0, 40), max_size=8))
def test_round_trip_is_byte_exact_for_any_bytes(body: bytes, sizes: list[int]) -> None:
    t = make(body, chunked(body, sizes))
    for back in round_trip(t):
        assert back.response.body == body
        assert back.response.chunks == t.response.chunks
        assert back.meta == t.meta and back.request == t.request


@settings(max_examples=300 if os.environ.get("STREAMBENCH_FULL") else 120, deadline=None)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_round_trip_is_exact_for_any_text(text: str) -> None:
    t = make(text.encode("utf-8"))
    t.meta.notes = t.meta.source = text
    t.request.body = {"messages": [{"content": text}], text: text}
    for back in round_trip(t):
        assert back.response.body == t.response.body
        assert back.meta == t.meta and back.request == t.request


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"data: x   \n\n",  # trailing spaces
        b"data: a\r\n\r\n",  # CRLF
        b"data: a\rdata: b\r\r",  # lone CR
        b"data: \x00nul\n\n",
        b"data:\ttab\n\n",
        b"data: \xff\xfe invalid utf-8\n\n",
        b"\xef\xbb\xbfdata: bom\n\n",
        b"   leading spaces\n\n\n",  # leading indentation + several trailing newlines
        b"no final newline",
        "data: \u2028 \x85 nel\n\n".encode(),
    ],
)
@pytest.mark.parametrize("backend", ["libyaml", "pure-python"])
def test_round_trip_through_a_file(
    tmp_path: Path, body: bytes, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend == "pure-python":
        monkeypatch.setattr(transcript, "_DUMPER", transcript._PyDumper)
        monkeypatch.setattr(transcript, "_LOADER", yaml.SafeLoader)
    path = save(make(body, [(0.0, len(body))]), tmp_path / "deep" / "t.yaml")
    back = load(path)
    assert back.response.body == body
    assert back.path == path
    assert back.chunk_bodies() == [(0.0, body)]


def test_plain_sse_body_is_a_literal_block_a_reviewer_can_read() -> None:
    text = dumps(make(b'event: ping\ndata: {"type": "ping"}\n\n'))
    assert '  body: |+\n    event: ping\n    data: {"type": "ping"}\n' in text


def test_invalid_utf8_body_is_stored_as_base64() -> None:
    doc = yaml.safe_load(dumps(make(b"\xff\x00data")))
    assert "body" not in doc["response"] and doc["response"]["body_b64"].strip() == "/wBkYXRh"


def test_chunk_bodies_split_the_body_at_recorded_boundaries() -> None:
    t = make(b"abcdef", [(1.5, 2), (3.0, 0), (7.25, 4)])
    assert t.chunk_bodies() == [(1.5, b"ab"), (3.0, b""), (7.25, b"cdef")]
    assert make(b"abc").chunk_bodies() is None


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "t.yaml"
    target.write_text("old")
    save(make(b"data: new\n\n"), target)
    assert load(target).response.body == b"data: new\n\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.yaml"]


def test_recorded_at_timestamp_stays_text() -> None:
    t = loads(HEADER + "  recorded_at: 2025-01-02T03:04:05Z\nresponse:\n  body: ''\n")
    assert isinstance(t.meta.recorded_at, str) and t.meta.recorded_at.startswith("2025-01-02")


BAD_FILES = [
    ("streambench: 1\nmeta: x\n  api: y: z\n", ":3: not valid YAML: mapping values"),
    ("streambench: 2\n" + HEADER[15:] + "response: {}\n", ":1: transcript format version 2"),
    ("meta: {}\n", "no 'streambench: 1' line"),
    ("streambench: 1\nmeta:\n  provider: x\nresponse: {}\n", ":2: meta.api is missing"),
    (
        "streambench: 1\nmeta:\n  provider: x\n  api: carrier-pigeon\nresponse: {}\n",
        ":4: meta.api 'carrier-pigeon' is unknown",
    ),
    (
        HEADER + "response:\n  body: abc\n  chunks:\n  - [0, 1]\n  - [5, 1]\n",
        ":7: response.chunks lengths sum to 2, but the body has 3 bytes",
    ),
    (HEADER + "response:\n  body: ab\n  chunks:\n  - [-1, 2]\n", ":8: response.chunks[0]: t_ms -1"),
    (
        HEADER + "response:\n  body: ab\n  chunks:\n  - [5, 1]\n  - [4, 1]\n",
        ":9: response.chunks[1]: t_ms 4 is before the previous 5.0",
    ),
    (HEADER + "response:\n  body: a\n  body_b64: YQ==\n", ":7: response has both body and"),
    (HEADER + "response:\n  body_b64: '***'\n", ":6: response.body_b64 is not valid base64"),
    ("- just\n- a list\n", "the document must be a mapping"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_file_is_one_line_naming_file_line_and_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TranscriptError) as info:
        load(path)
    error = str(info.value)
    assert "\n" not in error
    assert error.startswith(str(path))
    assert message in error


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match=r"nope\.yaml: no such file"):
        load(tmp_path / "nope.yaml")


def test_is_cassette_tells_cassettes_from_transcripts() -> None:
    assert is_cassette({"interactions": [], "version": 1})
    assert not is_cassette(yaml.safe_load(dumps(make(b""))))
    assert not is_cassette(["interactions"])


CASSETTE = """\
# source: somewhere (MIT)
interactions:
- request:
    method: POST
    uri: https://api.openai.com/v1/chat/completions
    headers:
      authorization: [Bearer sk-secret]
    body: '{"stream": true}'
  response:
    status: {code: 200, message: OK}
    headers:
      content-type: [text/event-stream]
    body:
      string: "data: {\\"choices\\": []}\\n\\ndata: [DONE]\\n\\n"
- request: {method: GET, uri: https://api.openai.com/v1/models, headers: {}, body: null}
  response:
    status: {code: 200, message: OK}
    headers: {content-type: [application/json]}
    body: {string: '{"data": []}'}
- request: {method: POST, uri: http://127.0.0.1:8000/v1/messages, headers: {}, body: null}
  response:
    status: {code: 200, message: OK}
    headers: {}
    body:
      string: !!binary |
        ZXZlbnQ6IHBpbmcKZGF0YToge30KCg==
version: 1
"""


def test_cassette_gives_one_transcript_per_streamed_interaction(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CASSETTE)
    first, binary = load_inputs([tmp_path])
    assert first.meta.source == f"{path}#0" and binary.meta.source == f"{path}#2"
    assert (first.meta.provider, first.meta.api) == ("openai", "openai-chat")
    assert first.meta.notes == "source: somewhere (MIT)"
    assert first.request.headers == {"authorization": "<redacted>"}
    assert first.request.body == {"stream": True}
    assert first.response.chunks is None
    assert first.response.body == b'data: {"choices": []}\n\ndata: [DONE]\n\n'
    # no content-type, but the !!binary body decodes as SSE events
    assert binary.response.body == b"event: ping\ndata: {}\n\n"
    assert (binary.meta.provider, binary.meta.api) == ("anthropic", "anthropic-messages")


def test_cassettes_sharing_a_stem_import_to_distinct_names(tmp_path: Path) -> None:
    """``a/chat.yaml`` and ``b/chat.yaml`` (and ``b/chat.yml``) each keep their transcripts."""
    sources = [tmp_path / "in" / name for name in ("a/chat.yaml", "b/chat.yaml", "b/chat.yml")]
    for number, source in enumerate(sources):
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(CASSETTE.replace("[DONE]", f"[DONE{number}]"))
    out = tmp_path / "out"
    files, saved, skipped = transcript.import_cassettes([tmp_path / "in"], out, lambda t: t)
    assert len(files) == 3 and len(saved) == 6 and skipped == 3
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        f"{stem}-{index}.yaml"
        for stem in ("a-chat", "b-chat-yaml", "b-chat-yml")
        for index in (0, 2)
    )
    bodies = {load(p).response.body for p in out.glob("*-0.yaml")}
    assert len(bodies) == 3  # none overwrote another
    # a stem no other cassette shares keeps its plain name
    transcript.import_cassettes([sources[0]], tmp_path / "one", lambda t: t)
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["chat-0.yaml", "chat-2.yaml"]


def test_folders_load_recursively_in_sorted_order(tmp_path: Path) -> None:
    for name in ("b/2.yml", "a.yaml", "b/1.yaml"):
        save(make(name.encode()), tmp_path / name)
    (tmp_path / "notes.txt").write_text("ignored")
    bodies = [t.response.body for t in load_inputs([tmp_path])]
    assert bodies == [b"a.yaml", b"b/1.yaml", b"b/2.yml"]


def test_missing_input_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match="no such file or folder"):
        load_inputs([tmp_path / "absent"])


@pytest.mark.skipif(not corpus_files(), reason="corpus folder ../shared/corpus is absent")
def test_every_corpus_stream_round_trips_through_the_format() -> None:
    transcripts = load_inputs(corpus_files())
    assert len(transcripts) == len(corpus_files()) == 88
    for t in transcripts:
        back = loads(dumps(t))
        assert back.response.body == t.response.body, t.meta.source
        assert back.request == t.request and back.meta == t.meta
