"""Hypothesis strategies generate only what the replay accepts, and streams that are valid."""

from __future__ import annotations

import json
from contextlib import nullcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streambench.replay import build_plan, parse_chunking, parse_fault, parse_latency
from streambench.replay.faults import CONTENT_FAULT_KINDS
from streambench.sse import decode_all
from streambench.testing.strategies import (
    FAULT_KINDS,
    STRUCTURED_FAULT_KINDS,
    chunkings,
    delta_chunkings,
    faults,
    latencies,
    seeds,
    stream_texts,
    transcripts,
    transport_chunkings,
)
from streambench.transcript import Transcript, synth

FAST = settings(max_examples=40, deadline=None)
ANY_TEXT = [k for k in CONTENT_FAULT_KINDS if k not in STRUCTURED_FAULT_KINDS]


@FAST
@given(spec=chunkings())
def test_chunkings_parse(spec: str) -> None:
    assert parse_chunking(spec).spec == spec


@FAST
@given(spec=transport_chunkings())
def test_transport_chunkings_have_no_content_split(spec: str) -> None:
    assert parse_chunking(spec).content is None


@FAST
@given(spec=delta_chunkings())
def test_delta_chunkings_are_content_splits(spec: str) -> None:
    assert parse_chunking(spec).content is not None


@FAST
@given(spec=latencies())
def test_latencies_parse(spec: str) -> None:
    assert parse_latency(spec).spec == spec


@FAST
@given(spec=faults(kinds=FAULT_KINDS))
def test_faults_parse(spec: str) -> None:
    assert parse_fault(spec).kind in FAULT_KINDS


@FAST
@given(spec=faults(kinds=ANY_TEXT), text=stream_texts().filter(bool))
def test_content_faults_are_drawn_and_replay_on_any_text(spec: str, text: str) -> None:
    assert parse_fault(spec).content
    t = synth.make_transcript(
        "openai-chat", synth.render("openai-chat", text=text), request_body={}
    )
    assert build_plan(t, faults=[spec]).chunks


@FAST
@given(
    spec=faults(kinds=[k for k in STRUCTURED_FAULT_KINDS if k not in ("tool", "blocks")]),
    text=stream_texts(),
    data=st.data(),
)
def test_structured_faults_apply_to_json_answers(spec: str, text: str, data: st.DataObject) -> None:
    answer = json.dumps({"code_edits": [{"new_code": text}], "text_answer": text})
    api = data.draw(st.sampled_from(["anthropic-messages", "openai-chat"]))
    t = synth.make_transcript(api, synth.render(api, text=answer), request_body={})
    delivered = build_plan(t, faults=[spec]).content()
    if spec == "refusal":
        assert delivered == ""
        return
    with pytest.raises(ValueError) if spec.startswith("bad-json") else nullcontext():
        assert json.loads(delivered, strict=True)["code_edits"] == []


@FAST
@given(spec=faults(kinds=["tool", "blocks"]), data=st.data())
def test_tool_and_block_faults_apply_to_answers_with_thinking_and_two_calls(
    spec: str, data: st.DataObject
) -> None:
    api = data.draw(st.sampled_from(["anthropic-messages", "openai-chat", "openai-responses"]))
    calls = [synth.ToolCall("read", '{"path": "a"}'), synth.ToolCall("ls", '{"dir": "b"}')]
    body = synth.render(api, text="Looking.", thinking="First the files.", tool_calls=calls)
    t = synth.make_transcript(api, body, request_body={})
    plan = build_plan(t, faults=[spec], seed=data.draw(seeds()))
    assert sorted(plan.content()) == sorted(build_plan(t).content())  # the same pieces, moved


def test_faults_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        faults(kinds=["meteor"])


def _text_of(transcript: Transcript) -> str:
    return "".join(
        json.loads(event.data)["delta"]["text"]
        for event in decode_all(transcript.response.body)
        if event.event == "content_block_delta"
    )


@FAST
@given(
    transcript=transcripts(apis=["anthropic-messages"], texts=stream_texts().filter(bool)),
    data=st.data(),
)
def test_transcripts_are_valid_streams_any_fault_fits(
    transcript: Transcript, data: st.DataObject
) -> None:
    assert transcript.meta.api == "anthropic-messages"
    n_events = len(synth.event_spans(transcript.response.body))
    assert len(transcript.response.chunks or []) == n_events
    # any fault (transport or content) drawn within the stream's length and any split replay
    # without a spec error
    fault = data.draw(faults(max_event=n_events - 1, max_bytes=len(transcript.response.body) - 1))
    chunking = data.draw(chunkings())
    plan = build_plan(transcript, chunking=chunking, faults=[fault], seed=data.draw(seeds()))
    assert plan.chunks


@FAST
@given(text=stream_texts(), data=st.data())
def test_transcripts_carry_the_drawn_text(text: str, data: st.DataObject) -> None:
    transcript = data.draw(transcripts(apis=["anthropic-messages"], texts=st.just(text)))
    assert _text_of(transcript) == text


@FAST
@given(transcript=transcripts())
def test_transcripts_cover_every_synth_api(transcript: Transcript) -> None:
    plan = build_plan(transcript, chunking="deltas:1")
    assert plan.body
