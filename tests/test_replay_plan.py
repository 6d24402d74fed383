"""ReplayPlan properties: splits reassemble, faults land exactly, latency models, determinism."""

from __future__ import annotations

import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import corpus_files

from streambench.errors import SpecError
from streambench.providers.apis import event_content, summarize
from streambench.replay import build_plan, parse_chunking, parse_fault, parse_latency
from streambench.replay.deltas import hostile_cuts
from streambench.sse import decode_all
from streambench.testing.strategies import delta_chunkings, seeds, transcripts, transport_chunkings
from streambench.transcript import Transcript, load_inputs, synth

FULL = os.environ.get("STREAMBENCH_FULL") == "1"
EXAMPLES = 300 if FULL else 30
fast = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def content(t_api: str, body: bytes) -> tuple[str, str, str, str | None]:
    s = summarize(t_api, decode_all(body))
    return s.text, s.tool_json, s.thinking, s.stop_reason


def events(body: bytes) -> list[tuple[str, str]]:
    return [(e.event, e.data) for e in decode_all(body)]


# ------------------------------------------------------------------------------------ splits


@fast
@given(t=transcripts(), chunking=transport_chunkings(), seed=seeds())
def test_transport_splits_deliver_the_recorded_bytes(
    t: Transcript, chunking: str, seed: int
) -> None:
    plan = build_plan(t, chunking=chunking, seed=seed)
    assert plan.body == t.response.body
    assert all(chunk.data for chunk in plan.chunks)
    times = [c.t_ms for c in plan.chunks]
    assert times == sorted(times)
    assert plan.ending == "eof"


@fast
@given(t=transcripts(), chunking=delta_chunkings(), seed=seeds())
def test_content_splits_keep_content_and_envelopes(t: Transcript, chunking: str, seed: int) -> None:
    plan = build_plan(t, chunking=chunking, seed=seed)
    assert content(t.meta.api, plan.body) == content(t.meta.api, t.response.body)
    assert plan.content("text") == summarize(t.meta.api, decode_all(t.response.body)).text
    originals = decode_all(t.response.body)
    delivered = [e.data for e in decode_all(plan.body)]
    assert len(delivered) >= len(originals)
    if t.meta.api != "openai-responses":  # responses renumbers sequence_number after a split
        # every event without content (ids, usage, stop, pings) is still there, in order
        others = [e.data for e in originals if not event_content(t.meta.api, e)]
        assert [d for d in delivered if d in others] == others


@pytest.fixture(scope="module")
def corpus() -> list[Transcript]:
    """The corpus streams (every third in the short form; all with STREAMBENCH_FULL=1)."""
    files = corpus_files()
    if not files:
        pytest.skip("corpus folder absent")
    return load_inputs(files if FULL else files[::3])


@pytest.mark.parametrize("chunking", ["deltas:1", "deltas:random", "deltas:adversarial+bytes:3"])
def test_content_splits_on_corpus_keep_every_kind_of_content(
    corpus: list[Transcript], chunking: str
) -> None:
    assert {t.meta.api for t in corpus} >= {"anthropic-messages", "openai-chat", "openai-responses"}
    for t in corpus:
        plan = build_plan(t, chunking=chunking, seed=5)
        assert content(t.meta.api, plan.body) == content(t.meta.api, t.response.body), t.path


def test_deltas_one_gives_one_character_per_content_event() -> None:
    t = synth.make_transcript(
        "openai-chat", synth.render("openai-chat", text="héllo 🎉"), request_body={}
    )
    plan = build_plan(t, chunking="deltas:1")
    assert [text for _, _, text in plan.content_timeline] == list("héllo 🎉")


def test_adversarial_cuts_inside_escapes_and_keys() -> None:
    inner = '{"code_edits": [{"replace": "a\\\\n\\u00e9"}], "text_answer": "ok"}'
    cuts = hostile_cuts(inner)
    esc = inner.index("\\u00e9")
    assert {esc + 1, esc + 2, esc + 4} <= cuts  # after the backslash, inside \\uXXXX
    key = inner.index('"code_edits"')
    assert key + 2 in cuts and key + len('"code_edits"') in cuts  # inside the key, before ':'
    t = synth.make_transcript(
        "anthropic-messages", synth.render("anthropic-messages", text=inner), request_body={}
    )
    plan = build_plan(t, chunking="deltas:adversarial")
    pieces = [text for _, kind, text in plan.content_timeline if kind == "text"]
    assert "".join(pieces) == inner
    assert not any("code_edits" in p or "text_answer" in p for p in pieces)
    assert any(p.endswith("\\") for p in pieces)


@fast
@given(t=transcripts(), chunking=st.one_of(transport_chunkings(), delta_chunkings()), seed=seeds())
def test_same_seed_same_bytes_and_times(t: Transcript, chunking: str, seed: int) -> None:
    latency = "tokens:rate=40,ttfb=100+jitter:sd=20"
    a = build_plan(t, chunking=chunking, latency=latency, seed=seed)
    b = build_plan(t, chunking=chunking, latency=latency, seed=seed)
    assert a.chunks == b.chunks


@fast
@given(t=transcripts(), chunking=st.one_of(transport_chunkings(), delta_chunkings()), seed=seeds())
def test_nothing_arrives_before_the_first_byte_time(
    t: Transcript, chunking: str, seed: int
) -> None:
    plan = build_plan(t, chunking=chunking, latency="tokens:rate=50,ttfb=300", seed=seed)
    assert min(c.t_ms for c in plan.chunks) >= 300


# ------------------------------------------------------------------------------------ faults


@st.composite
def positioned(draw: st.DrawFn) -> tuple[Transcript, int]:
    t = draw(transcripts())
    n = len(decode_all(t.response.body))
    return t, draw(st.integers(0, n - 1))


@fast
@given(case=positioned(), chunking=transport_chunkings(), seed=seeds())
def test_event_faults_land_exactly(case: tuple[Transcript, int], chunking: str, seed: int) -> None:
    t, n = case
    original = events(t.response.body)

    def run(fault: str) -> tuple[list[tuple[str, str]], str]:
        plan = build_plan(t, chunking=chunking, faults=[fault], seed=seed)
        return events(plan.body), plan.ending

    assert run(f"disconnect@event={n}") == (original[:n], "disconnect")
    assert run(f"truncate@event={n}") == (original[:n], "eof")
    got, ending = run(f"error-event@event={n}")
    assert got[:n] == original[:n] and len(got) == n + 1 and ending == "eof"
    assert "error" in got[-1][1]
    assert run(f"duplicate@event={n}")[0] == [*original[: n + 1], original[n], *original[n + 1 :]]
    got, _ = run(f"garbage@event={n}")
    assert got[:n] + got[n + 1 :] == original
    with pytest.raises(ValueError):
        json.loads(got[n][1])


@fast
@given(t=transcripts(), data=st.data())
def test_byte_and_text_disconnects_land_exactly(t: Transcript, data: st.DataObject) -> None:
    body = t.response.body
    n = data.draw(st.integers(0, len(body) - 1))
    plan = build_plan(
        t, chunking=data.draw(transport_chunkings()), faults=[f"disconnect@bytes={n}"]
    )
    assert (plan.body, plan.ending) == (body[:n], "disconnect")
    total = sum(len(text) for _, _, text in build_plan(t).content_timeline)
    if total:
        k = data.draw(st.integers(1, total))
        cut = build_plan(t, chunking="deltas:1", faults=[f"disconnect@text={k}"])
        delivered = sum(len(text) for _, _, text in cut.content_timeline)
        assert (delivered, cut.ending) == (k, "disconnect")


@fast
@given(case=positioned(), ms=st.integers(1, 5000))
def test_stall_delays_exactly_from_its_event(case: tuple[Transcript, int], ms: int) -> None:
    t, n = case
    base = [e.t_ms for e in build_plan(t, latency="recorded").timeline]
    stalled = [
        e.t_ms
        for e in build_plan(t, latency="recorded", faults=[f"stall@event={n},ms={ms}"]).timeline
    ]
    assert stalled[:n] == base[:n]
    assert stalled[n:] == [b + ms for b in base[n:]]


@pytest.mark.parametrize(
    ("api", "status", "error_type"),
    [
        ("anthropic-messages", 529, "overloaded_error"),
        ("anthropic-messages", 429, "rate_limit_error"),
        ("openai-chat", 429, "requests"),
        ("openai-responses", 500, "server_error"),
    ],
)
def test_http_fault_answers_with_the_providers_error(
    api: str, status: int, error_type: str
) -> None:
    t = synth.make_transcript(api, synth.render(api, text="hi"), request_body={})
    plan = build_plan(t, faults=[f"http:{status}@start"])
    body = json.loads(plan.body)
    assert plan.status == status and plan.headers["content-type"] == "application/json"
    assert body["error"]["type"] == error_type
    assert ("retry-after" in plan.headers) == (status == 429)


# ----------------------------------------------------------------------------------- latency


def test_latency_models() -> None:
    t = synth.make_transcript(
        "anthropic-messages",
        synth.render("anthropic-messages", deltas=["ab", "cdef"]),
        request_body={},
    )
    n = len(decode_all(t.response.body))
    const = [e.t_ms for e in build_plan(t, latency="const:ttfb=100,gap=10").timeline]
    assert const == [100 + 10 * i for i in range(n)]
    tokens = build_plan(t, latency="tokens:rate=50,ttfb=300")
    # 6 characters = 1.5 tokens at 50 tokens/s = 30 ms after the first byte
    assert tokens.duration_ms == pytest.approx(330.0)
    assert [t_ms for t_ms, _, _ in tokens.content_timeline] == pytest.approx([310.0, 330.0])
    scaled = build_plan(t, latency="scale:2")
    assert scaled.duration_ms == pytest.approx(2 * build_plan(t).duration_ms)
    jittered = [
        c.t_ms for c in build_plan(t, latency="const:ttfb=50,gap=10+jitter:sd=30", seed=1).chunks
    ]
    assert jittered == sorted(jittered) and jittered != const


def test_recorded_latency_uses_the_transcripts_chunk_times() -> None:
    body = synth.render("openai-chat", text="hi there")
    times = [float(10 * (i + 1)) for i in range(len(synth.event_spans(body)))]
    t = synth.make_transcript("openai-chat", body, request_body={}, chunk_times_ms=times)
    assert [c.t_ms for c in build_plan(t, latency="recorded").chunks] == times
    untimed = synth.make_transcript("openai-chat", body, request_body={})
    with pytest.raises(SpecError, match=r"'recorded'.*no recorded chunk times"):
        build_plan(untimed, latency="recorded")


# ------------------------------------------------------------------------------- bad specs

BAD_SPECS = [
    (parse_chunking, "bytes:0"),
    (parse_chunking, "bytes:x"),
    (parse_chunking, "random:min=5,max=2"),
    (parse_chunking, "wobble"),
    (parse_chunking, "deltas:0"),
    (parse_chunking, "bytes:3+lines"),
    (parse_chunking, "random:min=1,min=2"),
    (parse_latency, "tokens:rate=0"),
    (parse_latency, "scale:-1"),
    (parse_latency, "jitter:sd=x"),
    (parse_latency, "const:ttfb=1,wait=2"),
    (parse_latency, "fast"),
    (parse_fault, "boom@event=1"),
    (parse_fault, "disconnect"),
    (parse_fault, "disconnect@line=3"),
    (parse_fault, "disconnect@event=x"),
    (parse_fault, "stall@event=1"),
    (parse_fault, "http:200@start"),
    (parse_fault, "http:529@event=2"),
]


@pytest.mark.parametrize(("parse", "spec"), BAD_SPECS, ids=[s for _, s in BAD_SPECS])
def test_bad_specs_raise_one_line_naming_the_spec(parse: object, spec: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse(spec)  # type: ignore[operator]
    message = str(raised.value)
    assert repr(spec) in message and "\n" not in message


@pytest.mark.parametrize(
    "fault", ["disconnect@event=99", "disconnect@bytes=100000", "disconnect@text=5000"]
)
def test_position_past_the_end_names_the_spec(fault: str) -> None:
    t = synth.make_transcript(
        "openai-chat", synth.render("openai-chat", text="hi"), request_body={}
    )
    with pytest.raises(SpecError, match=rf"'{fault}'.*past the end"):
        build_plan(t, faults=[fault])


@pytest.mark.parametrize("low, high", [(1, 64), (1, 1), (3, 7), (5, 200)])
def test_random_cuts_are_randints_draws(low: int, high: int) -> None:
    """``random:min=A,max=B`` cuts after ``randint(A, B)`` bytes each time, from the chunking's
    own seeded stream: the inline draw gives exactly what ``randrange`` gives."""
    split = parse_chunking(f"random:min={low},max={high}").transport
    for seed in range(50):
        for n in (1, 5, 63, 64, 65, 1000):
            rng = random.Random(f"{seed}:chunking")
            expected, at = [], rng.randrange(low, high + 1)
            while at < n:
                expected.append(at)
                at += rng.randrange(low, high + 1)
            body = b"x" * n
            got = split.cuts(body, [n], random.Random(f"{seed}:chunking"))
            assert got == [*expected, n], (seed, n)
