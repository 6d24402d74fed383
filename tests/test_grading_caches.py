"""Grading caches what depends only on a recording or on the text a plan delivers (the
answer a body carries, how a sequence of deltas parses), keyed by value: two cases over the
same recording still get their own expectations and verdicts, in any order, and a cached
parse is placed on each run's own times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from streambench.grade.expect import recorded_answer
from streambench.grade.upstream import _json_answer, analyse_upstream
from streambench.runner.matrix import RunSpec, run_one
from streambench.transcript import load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDING = FIXTURES / "job-basic-replace" / "upstream.yaml"
# The recording's answer: one replace edit of this function, and its text.
EXPRESSION = "fn(state => {\n  return state;\n});\n"
RECORDED_TEXT = "I added a `get` call before your function."


def write_case(folder: Path, name: str, mode: str, expression: str, expect: dict[str, Any]) -> str:
    """A case over the shared recording (by absolute path: the same file for every case)."""
    folder.mkdir()
    case = {
        "name": name,
        "mode": mode,
        "request": {"content": "Fetch the patients first", "context": {"expression": expression}},
        "upstream": [str(RECORDING)],
        "expect": expect,
    }
    (folder / "case.yaml").write_text(yaml.safe_dump(case))
    return str(folder)


def rules_of(row: dict[str, Any]) -> set[str]:
    return {v["rule"] for v in row["violations"]}


@pytest.fixture
def cases(tmp_path: Path) -> dict[str, str]:
    return {
        # what the recording says: nothing to flag
        "stated": write_case(tmp_path / "a", "stated", "job_code", EXPRESSION, {}),
        # the same recording, but the case expects another text: the SUT's text is wrong
        "other-text": write_case(
            tmp_path / "b", "other-text", "job_code", EXPRESSION, {"text": "Something else."}
        ),
        # the same recording over other code: the expected code is the edit applied to it
        "other-code": write_case(
            tmp_path / "c", "other-code", "job_code", "// first\n" + EXPRESSION, {}
        ),
        # the same recording read in chat mode: the whole JSON text is the answer
        "chat": write_case(tmp_path / "d", "chat", "chat", "", {}),
    }


def test_cases_sharing_a_recording_keep_their_own_expectations(cases: dict[str, str]) -> None:
    order = ["stated", "other-text", "other-code", "chat", "stated", "chat", "other-text"]
    rows = [(name, run_one(RunSpec(cases[name], chunking="deltas:1"))) for name in order]
    by_case: dict[str, list[dict[str, Any]]] = {}
    for name, row in rows:
        by_case.setdefault(name, []).append(row)
    for name, runs in by_case.items():  # a case's rows do not depend on what ran before it
        assert all(r["violations"] == runs[0]["violations"] for r in runs), name
        assert all(r["expected_code"] == runs[0]["expected_code"] for r in runs), name

    stated, other_text = by_case["stated"][0], by_case["other-text"][0]
    other_code, chat = by_case["other-code"][0], by_case["chat"][0]
    assert stated["violations"] == [] and stated["expected_text"] == RECORDED_TEXT
    assert other_text["expected_text"] == "Something else."
    assert "wrong-text" in rules_of(other_text) and "wrong-text" not in rules_of(stated)
    assert stated["expected_code"] == 'get("/patients");\n' + EXPRESSION
    assert other_code["expected_code"] == '// first\nget("/patients");\n' + EXPRESSION
    assert chat["expected_code"] is None and chat["expected_text"] != RECORDED_TEXT
    assert '"text_answer": "I added' in chat["expected_text"]  # the JSON, read as text


def test_the_recorded_answer_follows_every_input_it_depends_on() -> None:
    transcript = load(RECORDING)
    first = recorded_answer(transcript, "job_code", EXPRESSION)
    assert first.code == 'get("/patients");\n' + EXPRESSION
    assert recorded_answer(transcript, "job_code", "x\n" + EXPRESSION).code == (
        'x\nget("/patients");\n' + EXPRESSION
    )
    assert recorded_answer(transcript, "chat", EXPRESSION).code is None
    assert recorded_answer(transcript, "job_code", EXPRESSION) == first


def test_a_parse_shared_by_two_runs_lands_on_each_runs_times() -> None:
    texts = ['{"code_edits": [], "text_', 'answer": "Hi', ' there"}']
    early = [(10.0, "text", t) for t in texts]
    late = [(t_ms + 500.0, kind, text) for t_ms, kind, text in early]
    hits = _json_answer.cache_info().hits
    first = analyse_upstream(early, "job_code")
    second = analyse_upstream(late, "job_code")
    assert _json_answer.cache_info().hits > hits  # the second run reused the parse
    assert first.text == second.text == "Hi there"
    assert first.structured_complete_ms == 10.0 and second.structured_complete_ms == 510.0
    assert first.text_times_ms == [10.0, 10.0] + [10.0] * 6
    assert second.text_times_ms == [t + 500.0 for t in first.text_times_ms]
    first.text_times_ms.clear()  # a run's content is its own: changing it changes no other
    assert analyse_upstream(early, "job_code").text_times_ms == [10.0] * 8
