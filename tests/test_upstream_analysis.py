"""The upstream analysis (the yardstick of changes_lag_ms, missing-changes and text lag): prefill
guesses, tool calls of every API shape (parallel calls too) under every re-split, the tool a
case names, and which of several upstream calls carried the answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from streambench.grade.upstream import (
    UpstreamContent,
    analyse_plan,
    analyse_upstream,
    served_call,
    tool_timeline,
)
from streambench.providers.apis import event_tool_calls
from streambench.replay import build_plan
from streambench.runner.matrix import RunSpec, run_one
from streambench.sse import SSEEvent
from streambench.transcript import Transcript, save, synth

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOOL_APIS = ("anthropic-messages", "openai-chat", "openai-responses")
RESPLITS = ("events", "deltas:1", "deltas:random", "deltas:adversarial", "deltas:3+bytes:5")
EDITS = {"code_edits": [{"action": "rewrite", "new_code": 'say("h\\u00e9 \\"x\\"")\n'}]}


def tool_transcript(api: str, *calls: synth.ToolCall, text: str = "Done.") -> Transcript:
    body = synth.render(api, text=text, tool_calls=calls)
    times = [10.0 * (i + 1) for i in range(len(synth.event_spans(body)))]
    return synth.make_transcript(api, body, request_body={}, chunk_times_ms=times)


# ------------------------------------------------------------------------ prefill guesses


def test_a_text_first_workflow_cut_short_is_not_read_as_yaml_first() -> None:
    """#11: under the yaml-first guess the text parsed as the yaml member, dating the end of the
    structured part to the end of the text: missing-changes on a run that sent none yet."""
    timeline = [
        (10.0, "text", "Text first, then"),
        (20.0, "text", ' the YAML.",\n  "yaml": "name: sync\\njobs:'),  # cut here
    ]
    content = analyse_upstream(timeline, "workflow")
    assert content.structured_complete_ms is None
    assert content.text == "Text first, then the YAML."


@pytest.mark.parametrize("fault", ["truncate@event=12", "error-event@event=12"])
def test_workflow_text_first_under_a_mid_stream_fault_is_not_missing_changes(fault: str) -> None:
    row = run_one(RunSpec(str(FIXTURES / "workflow-text-first"), faults=(fault,)))
    assert row["terminal"] == "error"
    assert "missing-changes" not in {v["rule"] for v in row["violations"]}


def test_a_bare_code_edit_is_not_the_whole_answer() -> None:
    """A truncated changes-first answer: under the "" guess the first edit object parsed as
    the whole answer object, although it holds none of the answer's members."""
    timeline = [(5.0, "text", '\n    {"action": "rewrite", "new_code": "x"}, {"act')]
    assert analyse_upstream(timeline, "job_code") == UpstreamContent()


# ----------------------------------------------------------------------------- tool calls


def test_event_tool_calls_keeps_parallel_calls_apart() -> None:
    chunk = {
        "choices": [
            {
                "delta": {
                    "tool_calls": [
                        {"index": 0, "function": {"name": "a", "arguments": "{}"}},
                        {"index": 1, "function": {"name": "b", "arguments": '{"x"'}},
                    ]
                }
            }
        ]
    }
    pieces = event_tool_calls("openai-chat", SSEEvent(data=json.dumps(chunk)))
    assert [(p.call, p.name, p.arguments) for p in pieces] == [("0", "a", "{}"), ("1", "b", '{"x"')]
    google = {"candidates": [{"content": {"parts": [{"functionCall": {"name": "g", "args": {}}}]}}]}
    pieces = event_tool_calls("google-generate", SSEEvent(data=json.dumps(google)))
    assert [(p.call, p.name, p.arguments) for p in pieces] == [(None, "g", "{}")]


@pytest.mark.parametrize("api", TOOL_APIS)
@pytest.mark.parametrize("resplit", RESPLITS)
def test_tool_input_completion_survives_every_resplit(api: str, resplit: str) -> None:
    """Two parallel calls; the edits ride on the second. Every re-split keeps each call's input
    whole (per call), and the analysis dates the end of the edits to the same event."""
    calls = (
        synth.ToolCall("lookup", '{"q": "a \\"b\\""}'),
        synth.ToolCall("edit", json.dumps(EDITS)),
    )
    transcript = tool_transcript(api, *calls)
    expected = analyse_plan(build_plan(transcript), "job_code")
    assert expected.structured_complete_ms is not None and expected.tool == "edit"
    assert expected.text == "Done."
    plan = build_plan(transcript, resplit, seed=3)
    inputs: dict[str | None, str] = {}
    for _, piece in tool_timeline(plan):
        inputs[piece.call] = inputs.get(piece.call, "") + piece.arguments
    assert [json.loads(v) for v in inputs.values()] == [json.loads(c.arguments) for c in calls]
    content = analyse_plan(plan, "job_code")
    assert content.tool == "edit" and content.text == "Done."
    # the same moment within one event gap (10 ms): pieces of a split event, and byte chunks,
    # arrive spread around the original event's time
    done_ms = content.structured_complete_ms
    assert done_ms is not None and abs(done_ms - expected.structured_complete_ms) < 10


@pytest.mark.parametrize("resplit", RESPLITS)
def test_parallel_calls_in_one_openai_chunk_are_split_per_call(resplit: str) -> None:
    head = {"id": "c", "object": "chat.completion.chunk", "model": "m", "usage": None}
    calls = [
        {"index": i, "id": f"call_{i}", "type": "function",
         "function": {"name": name, "arguments": json.dumps(args)}}
        for i, (name, args) in enumerate([("lookup", {"q": "\\u00e9"}), ("edit", EDITS)])
    ]  # fmt: skip
    chunks = [
        {**head, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": calls},
                              "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]  # fmt: skip
    body = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
    transcript = synth.make_transcript(
        "openai-chat", body, request_body={}, chunk_times_ms=[10.0, 20.0, 30.0]
    )
    plan = build_plan(transcript, resplit, seed=1)
    pieces = tool_timeline(plan)
    assert {p.call for _, p in pieces} == {"0", "1"}
    if resplit != "events":
        assert len(plan.timeline) > 3  # the chunk with both calls was split
    content = analyse_plan(plan, "job_code")
    assert content.tool == "edit" and content.structured_complete_ms is not None


def test_a_case_names_the_tool_when_no_input_has_the_structured_member() -> None:
    calls = (
        synth.ToolCall("lookup", '{"q": "x"}'),
        synth.ToolCall("write_code", '{"source": "x = 1"}'),
    )
    plan = build_plan(tool_transcript("anthropic-messages", *calls))
    assert analyse_plan(plan, "job_code").structured_complete_ms is None  # not obvious
    named = analyse_plan(plan, "job_code", tool="write_code")
    assert named.tool == "write_code" and named.structured_complete_ms is not None
    assert analyse_plan(plan, "job_code", tool="nope").structured_complete_ms is None


def test_a_truncated_tool_input_never_completed() -> None:
    transcript = tool_transcript("anthropic-messages", synth.ToolCall("edit", json.dumps(EDITS)))
    cut = build_plan(transcript, faults=["truncate@event=8"])
    assert analyse_plan(cut, "job_code").structured_complete_ms is None


# ------------------------------------------------------------------ several upstream calls


def test_the_call_that_carried_the_answer_is_found_by_content() -> None:
    rag = UpstreamContent(text="Relevant docs: state.data")
    answer = UpstreamContent(text="I rewrote the job.")
    correction = UpstreamContent(text="")
    assert served_call([rag, answer, correction], "I rewrote the job.") == 1
    assert served_call([answer, rag], "Relevant") == 1
    assert served_call([rag, answer], "") == 1  # nothing to match: the latest call
    assert served_call([], "x") == 0


def test_a_title_call_after_the_answer_does_not_take_its_metrics(tmp_path: Path) -> None:
    answer = "The answer is forty-two, and here is why it matters."
    for name, text in (("answer", answer), ("title", "Forty-two")):
        body = synth.render("anthropic-messages", text=text)
        times = [400.0 + 30.0 * i for i in range(len(synth.event_spans(body)))]
        transcript = synth.make_transcript(
            "anthropic-messages", body, request_body={}, chunk_times_ms=times
        )
        save(transcript, tmp_path / f"{name}.yaml")
    case = {
        "name": "title-after",
        "mode": "chat",
        "request": {"content": "why 42?"},
        "upstream": ["answer.yaml", "title.yaml"],
        "expect": {"text": answer},
    }
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(case))
    row = run_one(RunSpec(str(tmp_path), "tests.suts.title_after:app", chunking="deltas:1"))
    assert row["upstream_calls"] == 2 and row["answer_call"] == 1
    assert row["violations"] == [] and row["final_text"] == answer
    # the SUT forwards each delta as it arrives: the lag of every character is ~0
    assert 0 <= row["text_lag_p95_ms"] < 1
    timeline = json.loads(row["timeline_json"])
    assert {p["source"] for p in timeline} == {"upstream 1", "upstream 2", "client"}
