"""Content faults against whole systems: the reference stack sees through whitespace and escapes
and says when an answer was cut; the naive SUT (apollo #407's first version) shows its bugs
under plain ``events`` chunking once the model formats or escapes differently.

Short form in CI (reformat:compact and escape:ascii); ``STREAMBENCH_FULL=1`` runs all five.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from streambench.runner.cases import load_case
from streambench.runner.matrix import Matrix, run_matrix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAIVE = "tests.suts.naive:app"
FULL = os.environ.get("STREAMBENCH_FULL") == "1"
SEE_THROUGH = (
    ("reformat:compact", "reformat:spaced", "reformat:newlines", "escape:ascii", "escape:raw")
    if FULL
    else ("reformat:compact", "escape:ascii")
)


def _rules(frame: pd.DataFrame, case: str, fault: str) -> set[str]:
    rows = frame[(frame["case"] == case) & (frame["fault"] == fault)]
    assert len(rows) == 1
    return {v["rule"] for v in rows.iloc[0]["violations"]}


def test_the_reference_is_clean_under_reformat_and_escape_on_every_fixture() -> None:
    frame = run_matrix(
        Matrix(
            cases=[str(FIXTURES)],
            chunkings=["events"],
            faults=[(f,) for f in SEE_THROUGH],
        )
    )
    assert len(frame) == len(SEE_THROUGH) * len({*frame["case"]}) > 40
    dirty = frame[frame["violations"].map(len) > 0]
    assert dirty.empty, dirty[["case", "fault", "violations"]].to_string()
    # a refused request (fixtures/http-*: a bad body, an unknown thread) has no stream at all
    answered = frame[~frame["case"].map(lambda c: load_case(FIXTURES / c).refused)]
    assert (answered["terminal"] == answered["expected_terminal"]).all()
    # the fixtures whose recording stops inside the code, or is not JSON, stay unusable
    assert set(answered[answered["terminal"] == "error"]["case"]) == {
        "job-max-tokens-mid-code",
        "job-junk-after-text",
        "job-equals-for-colon",
    }


def test_the_reference_reports_an_answer_cut_inside_the_code_as_incomplete() -> None:
    cases = sorted(str(p) for p in FIXTURES.glob("job-*") if p.is_dir())
    cases.remove(str(FIXTURES / "job-max-tokens-mid-code"))  # under 30% of its own text
    frame = run_matrix(
        Matrix(cases=cases, chunkings=["events"], faults=[("stop:max_tokens@text=30%",)])
    )
    assert len(frame) == len(cases)
    # never a silent done with half the code: an error naming the cut answer, no edit applied
    assert (frame["terminal"] == "error").all(), frame[["case", "terminal"]].to_string()
    assert frame["final_code"].isna().all()
    assert frame["error_message"].str.contains("answer ended").all()


@pytest.mark.parametrize(
    ("case", "fault", "rule"),
    [
        # the naive SUT waits for '],\n  "text_answer": "': a compact answer never has it
        ("job-basic-replace", "reformat:compact", "missing-changes"),
        # its two-character unescape buffer does not know \uXXXX
        ("job-unicode-raw", "escape:ascii", "escape-leak"),
    ],
)
def test_the_naive_sut_is_flagged_under_a_content_fault_with_events_chunking(
    case: str, fault: str, rule: str
) -> None:
    frame = run_matrix(
        Matrix(
            cases=[str(FIXTURES / case)],
            suts=[NAIVE],
            chunkings=["events"],
            faults=[(), (fault,)],
        )
    )
    assert rule not in _rules(frame, case, "")  # the recording as it was hides the bug
    assert rule in _rules(frame, case, fault)


def test_an_answer_stopped_inside_the_code_is_incomplete_and_done_there_is_flagged() -> None:
    # the recording itself stops at max_tokens mid-code: no expect.terminal, the grader derives
    # error, also under content faults; the reference says so, a backend answering done does not
    case = str(FIXTURES / "job-max-tokens-mid-code")
    faults = [(), ("reformat:compact",), ("pings:2",)]
    suts = ["reference", "tests.suts.broken:done_on_max_tokens"]
    frame = run_matrix(
        Matrix(cases=[case], suts=suts, chunkings=["events", "bytes:16"], faults=faults)
    )
    assert len(frame) == 12 and (frame["expected_terminal"] == "error").all()
    reference = frame[frame["sut"] == "reference"]
    assert (reference["terminal"] == "error").all() and reference["final_code"].isna().all()
    assert (reference["violations"].map(len) == 0).all(), reference["violations"].tolist()
    broken = frame[frame["sut"] != "reference"]
    assert (broken["terminal"] == "done").all()
    assert all("done-after-truncation" in {v["rule"] for v in vs} for vs in broken["violations"])


@pytest.mark.parametrize("fault", ["stop:max_tokens@text=60%", "refusal", "bad-json@char=0"])
def test_a_backend_answering_done_on_an_unusable_answer_is_flagged(fault: str) -> None:
    case = str(FIXTURES / "job-rewrite")
    suts = ["reference", "tests.suts.broken:done_on_max_tokens"]
    frame = run_matrix(Matrix(cases=[case], suts=suts, chunkings=["events"], faults=[(fault,)]))
    rules = {row.sut: {v["rule"] for v in row.violations} for row in frame.itertuples()}
    assert rules["reference"] == set(), rules
    assert "done-after-truncation" in rules["tests.suts.broken:done_on_max_tokens"], rules
