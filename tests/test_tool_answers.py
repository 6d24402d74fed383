"""A tool-call recording carries an expected answer: the grader decodes the answer tool's input
(Anthropic ``tool_use`` + ``input_json_delta``, OpenAI chat ``tool_calls``, responses
``function_call``, google ``functionCall``; streamed or as one JSON body), so a case without
``expect`` served by one is graded, and a tool-mode SUT that shows a wrong answer is flagged."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from streambench.grade.expect import Answer, expected_outcomes, recorded_answer, upstream_fate
from streambench.grade.upstream import tool_calls
from streambench.providers import registry
from streambench.providers.apis import body_tool_calls
from streambench.replay import build_plan
from streambench.runner.cases import load_case
from streambench.runner.matrix import RunSpec, earlier_turns, run_one
from streambench.transcript import load_inputs, save, synth

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "fixtures" / "experiments"
TOOL_CASES = sorted(
    p.parent
    for order in ("tool_changes_first", "tool_text_first")
    for p in (EXPERIMENTS / order).glob("*/case.yaml")
)
SDK_TOOL_EDITS = "tests.suts.sdk_tool_edits"
ORIGINAL = "fn(state => state);"
EDITS = [
    {"action": "replace", "old_code": "state);", "new_code": "state.data);"},
    {"action": "replace", "old_code": "fn(", "new_code": "get('/a');\nfn("},
]
EXPECTED = Answer("Two edits.", "get('/a');\nfn(state => state.data);")


def _ids(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


@pytest.mark.parametrize("case_dir", TOOL_CASES, ids=_ids)
def test_the_recorded_answer_of_a_tool_recording_is_the_cases_stated_answer(
    case_dir: Path,
) -> None:
    case = load_case(case_dir)
    transcript = load_inputs([case_dir / case.upstream[0]])[0]
    assert body_tool_calls(transcript.meta.api, transcript.response.body)  # a tool recording
    answer = recorded_answer(transcript, case.mode, case.expression, case.tool)
    assert answer == Answer(case.expect_text, case.expect_code)


@pytest.mark.parametrize("api", registry.renderable())
@pytest.mark.parametrize("streamed", [True, False], ids=["stream", "json"])
@pytest.mark.parametrize("text_in_input", [True, False], ids=["changes-first", "text-first"])
def test_every_api_streamed_or_not_carries_the_answer_of_its_tool_call(
    api: str, streamed: bool, text_in_input: bool
) -> None:
    # a side call first: the answer is the call whose input has code_edits
    member = {"text_answer": EXPECTED.text} if text_in_input else {}
    calls = (
        synth.ToolCall("lookup_docs", json.dumps({"q": "state"})),
        synth.ToolCall("edit_job_code", json.dumps({"code_edits": EDITS, **member})),
    )
    text = "" if text_in_input else str(EXPECTED.text)  # text first: the plain text beside
    if streamed:
        body = synth.render(api, text=text, tool_calls=calls)
    else:
        body = synth.render_json_response(api, text, tool_calls=calls)
    transcript = synth.make_transcript(api, body, request_body={})
    assert recorded_answer(transcript, "job_code", ORIGINAL) == EXPECTED
    # the case names the tool: another tool's input is not the answer
    assert recorded_answer(transcript, "job_code", ORIGINAL, "lookup_docs") == Answer(None, None)
    assert recorded_answer(transcript, "chat", ORIGINAL) == Answer(text)


def _without_expect(case_dir: Path, folder: Path) -> Path:
    copy = folder / f"{case_dir.parent.name}-{case_dir.name}"
    shutil.copytree(case_dir, copy)
    data = yaml.safe_load((copy / "case.yaml").read_text())
    del data["expect"]
    (copy / "case.yaml").write_text(yaml.safe_dump(data))
    return copy


@pytest.mark.parametrize("chunking", ["events", "deltas:1"])
def test_the_reference_in_tool_mode_is_clean_against_the_recorded_answer(
    chunking: str, tmp_path: Path
) -> None:
    for case_dir in TOOL_CASES:
        sut = "reference:structured=tool"
        if case_dir.parent.name == "tool_text_first":
            sut += ",order=text_first"
        stated = load_case(case_dir)
        row = run_one(
            RunSpec(str(_without_expect(case_dir, tmp_path / chunking)), sut, chunking=chunking)
        )
        assert row["violations"] == [] and row["not_checked"] == [], (case_dir, row["violations"])
        assert row["expected_text"] == stated.expect_text == row["streamed_text"]
        assert row["expected_code"] == stated.expect_code == row["final_code"]


@pytest.mark.parametrize("chunking", ["events", "deltas:adversarial"])
def test_a_tool_sut_showing_the_wrong_code_is_wrong_code_without_an_expect(
    chunking: str, tmp_path: Path
) -> None:
    case = _without_expect(EXPERIMENTS / "tool_changes_first" / "two-steps", tmp_path)
    good = run_one(RunSpec(str(case), f"{SDK_TOOL_EDITS}:app", chunking=chunking))
    graded = {"wrong-text", "wrong-code"}  # (it sends no metadata: those rules say not_checked)
    assert good["violations"] == [] and not graded & set(good["not_checked"])
    wrong = run_one(RunSpec(str(case), f"{SDK_TOOL_EDITS}:first_edit_app", chunking=chunking))
    assert wrong["final_code"] != wrong["expected_code"] == good["final_code"]
    assert {v["rule"] for v in wrong["violations"]} == {"wrong-code"}
    assert "wrong-code" not in wrong["not_checked"]


@pytest.mark.parametrize("api", ["openai-responses", "openai-chat", "anthropic-messages"])
def test_a_duplicated_tool_call_id_expects_what_the_apis_official_sdk_does(api: str) -> None:
    calls = (
        synth.ToolCall("lookup_docs", json.dumps({"q": "state"})),
        synth.ToolCall("edit_job_code", json.dumps({"code_edits": EDITS})),
    )
    body = synth.render(api, text=str(EXPECTED.text), tool_calls=calls)
    transcript = synth.make_transcript(api, body, request_body={})
    plan = build_plan(transcript, faults=["tool:duplicate-id"])
    answer = recorded_answer(transcript, "job_code", ORIGINAL)
    fate = upstream_fate(transcript, plan, "job_code")
    outcomes = {(o.terminal, o.delivered) for o in expected_outcomes([answer], [fate])}
    if api == "openai-responses":
        # the SDK raises "Response snapshot has conflicting output identities." at the second
        # call, after the text: an error with a prefix, or done from a client that goes on
        assert fate.tolerable and fate.shows_content and "SDK refuses" in fate.why
        assert outcomes == {("error", True), ("done", True)}
    else:
        assert not fate.fails and outcomes == {("done", True)}


CORPUS = ROOT.parent / "shared" / "corpus"


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
def test_every_tool_call_of_the_corpus_is_read_whole_by_its_api_module() -> None:
    apis: Counter[str] = Counter()
    for path in sorted(CORPUS.glob("*.yaml")):
        for t in load_inputs([path]):
            pieces = body_tool_calls(t.meta.api, t.response.body)
            if t.response.status != 200 or t.meta.truncated or not pieces:
                continue
            for call in tool_calls([(0.0, piece) for piece in pieces]):
                apis[t.meta.api] += 1
                assert call.name, (path.name, call)
                # a call without input streams none; every other input is one JSON object
                assert call.arguments == "" or isinstance(json.loads(call.arguments), dict)
    assert {"anthropic-messages", "openai-chat", "openai-responses"} <= set(apis), apis


def test_an_earlier_turn_of_a_tool_case_puts_the_named_tools_answer_in_the_history(
    tmp_path: Path,
) -> None:
    # the earlier turn's model called a draft tool first, then the one the case names
    calls = (
        synth.ToolCall("draft_code", json.dumps({"code_edits": [], "text_answer": "A draft."})),
        synth.ToolCall("edit_job_code", json.dumps({"code_edits": EDITS, "text_answer": "Done."})),
    )
    body = synth.render("anthropic-messages", text="", tool_calls=calls)
    save(synth.make_transcript("anthropic-messages", body, request_body={}), tmp_path / "t1.yaml")
    request = {"content": "Now log it", "context": {"expression": ORIGINAL}}
    case = {
        "name": "tool-thread",
        "mode": "job_code",
        "tool": "edit_job_code",
        "request": request,
        "upstream": ["t1.yaml"],
        "turns": [{"request": {**request, "content": "Fetch first"}, "upstream": ["t1.yaml"]}],
    }
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(case))
    _, history = earlier_turns(load_case(tmp_path), RunSpec(str(tmp_path)))
    assert history == ("Fetch first", "Done.")


def _tool_thread(tmp_path: Path) -> Path:
    """A job-code thread of two turns, each answered by an ``edit_job_code`` tool call."""
    for name, edits, text in (("t1", EDITS[:1], "Fetched."), ("t2", EDITS[1:], "Logged.")):
        call = synth.ToolCall(
            "edit_job_code", json.dumps({"code_edits": edits, "text_answer": text})
        )
        body = synth.render("anthropic-messages", text="", tool_calls=(call,))
        transcript = synth.make_transcript("anthropic-messages", body, request_body={})
        save(transcript, tmp_path / f"{name}.yaml")
    first = {"content": "Fetch the data first", "context": {"expression": ORIGINAL}}
    case = {
        "name": "tool-thread",
        "mode": "job_code",
        "tool": "edit_job_code",
        "request": {"content": "Now log it", "context": {"expression": ORIGINAL}},
        "upstream": ["t2.yaml"],
        "turns": [{"request": first, "upstream": ["t1.yaml"]}],
    }
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(case))
    return tmp_path


def test_a_tool_backend_whose_thread_loses_the_tool_answers_is_lost_history(
    tmp_path: Path,
) -> None:
    case = str(_tool_thread(tmp_path))
    good = run_one(RunSpec(case, "reference:structured=tool"))
    assert good["violations"] == [] and "lost-history" not in good["not_checked"]
    broken = run_one(RunSpec(case, "tests.suts.http_misuse:tool_turns_unsaved"))
    # what the user saw of the judged turn is right: only the history it was asked with is not
    assert broken["final_text"] == good["final_text"] == "Logged."
    assert [v["rule"] for v in broken["violations"]] == ["lost-history"]
    assert "Fetched." in broken["violations"][0]["message"]
