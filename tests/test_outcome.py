"""The outcome is judged first: broken backends never pass, the reference always does, and an
expectation is derived from the case, its recordings and the faults (issue #11)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from tests.conftest import cli_exit_code

from streambench.errors import ConfigError
from streambench.grade.client import consume
from streambench.grade.dialects import UIEvent
from streambench.grade.expect import Answer, Outcome, UpstreamFate, expected_outcomes
from streambench.grade.profile import default_profile
from streambench.grade.rules import RunContext, judge
from streambench.grade.variance import cross_run_violations
from streambench.providers.apis import summarize
from streambench.runner.cases import load_case, load_cases
from streambench.runner.executors import LocalExecutor
from streambench.runner.matrix import (
    DEFAULT_CHUNKINGS,
    DEFAULT_EXTRA_CELLS,
    MID_STREAM_FAULT,
    Matrix,
    RunSpec,
    run_matrix,
    run_one,
)
from streambench.sse import decode_all
from streambench.transcript import load_inputs
from streambench.uses.chaos import transcript_faults

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
FULL = os.environ.get("STREAMBENCH_FULL") == "1"
BROKEN = [f"tests.suts.broken:{name}" for name in ("always_error", "lossy_lines", "stripped_text")]
# The short form keeps the chunkings that split reads inside lines (bytes:16, random).
CHUNKINGS = list(DEFAULT_CHUNKINGS) if FULL else ["events", "bytes:16", "random:min=1,max=64"]


# The recorded answers that are not JSON (fixtures/make_fixtures.py): a correct backend ends in
# error, showing at most the text that arrived before the fault, applying no code.
MALFORMED = {"job-junk-after-text", "job-equals-for-colon"}
# The requests a correct backend refuses (expect.status of 400 or more), with no answer.
REFUSED = {p.parent.name for p in FIXTURES.glob("*/case.yaml") if load_case(p.parent).refused}


def _wrong(row: pd.Series) -> bool:
    """Independent of the rules: the user did not end with the case's answer (or, where the
    recording stops at max_tokens inside the code or is malformed, with an error that applied
    nothing; under the mid-stream cut, with an error that shows a prefix of the answer and
    applies nothing; for a request to refuse, with the case's status)."""
    case = load_case(FIXTURES / row["case"])
    code = case.expect_code if case.expect_code is not None else case.expect_yaml
    if case.refused:
        return row["status_code"] != case.expect_status
    if row["fault"] or row["case"] in MALFORMED:
        assert not row["fault"] or row["fault"] == MID_STREAM_FAULT
        shown = row["streamed_text"]
        cut_code = isinstance(row["final_code"], str)
        return row["terminal"] != "error" or not case.expect_text.startswith(shown) or cut_code
    if case.mode != "chat" and _recorded_stop(case) == "max_tokens":
        cut_code = isinstance(row["final_code"], str)
        return row["terminal"] != "error" or row["streamed_text"] != case.expect_text or cut_code
    return (
        row["terminal"] != "done"
        or row["streamed_text"] != case.expect_text
        or (code is not None and row["final_code"] != code)
    )


def _recorded_stop(case: Any) -> str | None:
    transcript = load_inputs([case.upstream[0]])[0]
    return summarize(transcript.meta.api, decode_all(transcript.response.body)).stop_reason


def test_broken_backends_have_every_wrong_run_flagged() -> None:
    # the default matrix's extra cells (the second seed, the mid-stream fault) on top
    matrix = Matrix(
        cases=[str(FIXTURES)], suts=BROKEN, chunkings=CHUNKINGS, also=list(DEFAULT_EXTRA_CELLS)
    )
    frame = run_matrix(matrix, LocalExecutor(2))
    assert set(frame["seed"]) == {0, 1} and set(frame["fault"]) == {"", MID_STREAM_FAULT}
    wrong = frame.apply(_wrong, axis=1)
    unflagged = frame[wrong & (frame["n_violations"] == 0)]
    assert unflagged.empty, unflagged[["sut", "case", "chunking"]].to_string()
    # a right run is flagged only by the cross-run rules, when the wrong runs are the majority,
    # or (always_error on the stop mid-code, rightly an error) for never calling the provider,
    # or (an app routing POST /messages only) for answering GET /threads/.../messages with
    # starlette's plain 404: the right status, not the documented body
    right_rules = {v["rule"] for vs in frame[~wrong]["violations"] for v in vs}
    assert right_rules <= {
        "split-variance",
        "status-variance",
        "no-upstream-call",
        "wrong-json-answer",
    }
    called = frame[~wrong & (frame["sut"] != "tests.suts.broken:always_error")]
    assert {v["rule"] for vs in called["violations"] for v in vs} <= {
        "split-variance",
        "status-variance",
    }
    for sut in BROKEN:  # each bug shows up somewhere
        assert wrong[frame["sut"] == sut].any(), sut
    rules = {v["rule"] for vs in frame["violations"] for v in vs}
    assert {"unexpected-error", "wrong-text", "split-variance"} <= rules


def test_a_lossy_reader_differs_under_one_chunking_only_and_is_split_variance() -> None:
    matrix = Matrix(
        cases=[str(FIXTURES / "chat-hello")],
        suts=["tests.suts.broken:lossy_lines"],
        chunkings=["events", "deltas:1", "bytes:16"],
    )
    rows = {r["chunking"]: r for _, r in run_matrix(matrix).iterrows()}
    assert [v["rule"] for v in rows["events"]["violations"]] == []
    variance = [v for v in rows["bytes:16"]["violations"] if v["rule"] == "split-variance"]
    assert len(variance) == 1
    assert "as under events, deltas:1" in variance[0]["message"]
    assert "char 0" in variance[0]["message"] or "ends in" in variance[0]["message"]


def test_a_wrong_expect_text_is_wrong_text(tmp_path: Path) -> None:
    case = tmp_path / "case"
    shutil.copytree(FIXTURES / "chat-hello", case)
    data = yaml.safe_load((case / "case.yaml").read_text())
    data["expect"]["text"] = data["expect"]["text"].replace("o", "0", 1)
    (case / "case.yaml").write_text(yaml.safe_dump(data))
    row = run_one(RunSpec(str(case)))
    wrong = [v for v in row["violations"] if v["rule"] == "wrong-text"]
    assert len(wrong) == 2  # the streamed text and the final message's text
    assert "at char" in wrong[0]["message"] and "vs expected" in wrong[0]["message"]


def test_a_case_without_expect_expects_the_recorded_answer(tmp_path: Path) -> None:
    for name in ("chat-hello", "job-basic-replace", "workflow-text-first"):
        case = tmp_path / name
        shutil.copytree(FIXTURES / name, case)
        stated = load_case(case)
        data = yaml.safe_load((case / "case.yaml").read_text())
        del data["expect"]
        (case / "case.yaml").write_text(yaml.safe_dump(data))
        row = run_one(RunSpec(str(case), chunking="bytes:16"))
        assert row["violations"] == [] and row["not_checked"] == []
        assert row["expected_text"] == stated.expect_text
        assert row["expected_code"] == (stated.expect_code or stated.expect_yaml)


def test_a_transcript_is_a_case(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    recording = REPO / "recordings" / "anthropic-chat.yaml"
    row = run_one(RunSpec(str(recording), chunking="random:min=1,max=64"))
    assert row["case"] == "anthropic-chat" and row["violations"] == []
    assert row["expected_text"] == row["streamed_text"] != ""
    args = ["run", "--case", str(recording), "--out", str(tmp_path)]
    assert cli_exit_code(args) == 0
    runs = len(Matrix(cases=[str(recording)]).specs())  # the default cells, fault and seed too
    assert runs > 6 and f"{runs} clean" in capsys.readouterr().err
    # a folder of transcripts: each file is a case
    folder = tmp_path / "recs"
    folder.mkdir()
    for name in ("anthropic-chat.yaml", "anthropic-job-code-text-first.yaml"):
        shutil.copy(REPO / "recordings" / name, folder / name)
    cases = load_cases([folder])
    assert [(c.name, c.mode) for c in cases] == [
        ("anthropic-chat", "chat"),
        ("anthropic-job-code-text-first", "job_code"),
    ]
    assert cases[1].request["order"] == "text_first"
    frame = run_matrix(Matrix(cases=[str(folder)], chunkings=["events", "bytes:16"]))
    assert frame["n_violations"].sum() == 0 and (frame["terminal"] == "done").all()


def test_inspect_text_prints_the_recorded_answer(capsys: pytest.CaptureFixture[str]) -> None:
    recording = REPO / "recordings" / "anthropic-workflow.yaml"
    assert cli_exit_code(["inspect", "--text", str(recording)]) == 0
    out = capsys.readouterr().out
    assert "(anthropic-messages, workflow)" in out and "-- yaml" in out and "jobs:" in out


def test_expect_terminal_and_bad_expect_keys(tmp_path: Path) -> None:
    case = tmp_path / "case"
    shutil.copytree(FIXTURES / "chat-hello", case)
    data = yaml.safe_load((case / "case.yaml").read_text())
    data["expect"]["terminal"] = "error"
    (case / "case.yaml").write_text(yaml.safe_dump(data))
    assert load_case(case).expect_terminal == "error"
    row = run_one(RunSpec(str(case)))
    assert [v["rule"] for v in row["violations"]] == ["done-after-truncation"]
    data["expect"]["terminal"] = "maybe"
    (case / "case.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"expect\.terminal: 'maybe' is not one of done, error"):
        load_case(case)
    data["expect"] = {"txt": "typo"}
    (case / "case.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"expect\.txt: unknown key"):
        load_case(case)


def _chaos_faults(case_path: Path) -> list[str]:
    transcript = load_inputs(load_case(case_path).upstream)[0]
    if transcript.response.status != 200:  # a recorded failure: only the start positions apply
        return ["http:500@start", "http:429@start,retry_after=3", "disconnect@bytes=0"]
    return sorted(set(transcript_faults(transcript).values()))


CHAOS_CASES = (
    sorted(p.parent.name for p in FIXTURES.glob("*/case.yaml"))
    if FULL
    else ["chat-hello", "job-basic-replace", "failover-openai-chat", "retry-after-429"]
)


@pytest.mark.parametrize("name", CHAOS_CASES)
def test_the_reference_is_clean_under_every_chaos_fault(name: str) -> None:
    case = FIXTURES / name
    faults = [(f,) for f in _chaos_faults(case)]
    frame = run_matrix(Matrix(cases=[str(case)], chunkings=["events"], faults=faults))
    flagged = frame[frame["n_violations"] > 0]
    assert flagged.empty, [(r.fault, r.violations) for r in flagged.itertuples()]
    assert len(frame) >= 3 and set(frame["terminal"]) <= {"done", "error"}


# ---------------------------------------------------------------------------- derivation


def test_expected_outcome_follows_the_chain_contract() -> None:
    answers = [Answer("first answer"), Answer("second answer")]
    healthy = UpstreamFate(False, True)
    early = UpstreamFate(True, False, why="http:529@start")
    late = UpstreamFate(True, True, cut=True, why="truncate@event=5")
    assert expected_outcomes(answers, [healthy, healthy])[0].answer.text == "first answer"
    fallthrough = expected_outcomes(answers, [early, healthy])
    assert [(o.terminal, o.answer.text) for o in fallthrough] == [("done", "second answer")]
    committed = expected_outcomes(answers, [late, healthy])
    assert [(o.terminal, o.cut) for o in committed] == [("error", True)]
    alone = expected_outcomes(answers[:1], [early])
    assert [(o.terminal, o.delivered) for o in alone] == [("error", False)]
    tolerable = UpstreamFate(True, True, tolerable=True, why="garbage@event=3")
    assert {o.terminal for o in expected_outcomes(answers[:1], [tolerable])} == {"done", "error"}


def ev(t: float, kind: str, text: str | None = None, code: str | None = None, **data: Any):
    return UIEvent(t, kind, text=text, code=code, data=data)


def judged(events: list[UIEvent], mode: str = "chat", **ctx: Any) -> tuple[list[str], list[str]]:
    violations, not_checked = judge(RunContext(consume(events), mode, **ctx), default_profile())
    return [v.rule for v in violations], not_checked


def test_nothing_is_judged_vacuously() -> None:
    rules, not_checked = judged([ev(1, "text", "hi"), ev(2, "done", None)])
    assert rules == [] and {"wrong-text", "unexpected-error", "text-mismatch"} <= set(not_checked)
    done = (Outcome("done", Answer("hi", None), "upstream 1 answers"),)
    rules, not_checked = judged(
        [ev(1, "text", "hi"), ev(2, "done", "hi")], "job_code", expected=done
    )
    assert rules == [] and "wrong-code" in not_checked  # the recording gave no code


def test_leaks_are_found_by_position_not_count() -> None:
    expected = 'He said "hi"}'  # the expected text legitimately ends in "}
    leak = [ev(1, "text", '"text_answer": He said "hi"}'), ev(2, "done", expected)]
    rules, _ = judged(leak, expected_text=expected)
    assert "json-leak" in rules
    clean = [ev(1, "text", expected), ev(2, "done", expected)]
    assert judged(clean, expected_text=expected)[0] == []


def test_wrong_code_includes_no_code_at_all() -> None:
    done = (Outcome("done", Answer("ok", "x = 1"), "upstream 1 answers"),)
    rules, _ = judged([ev(1, "text", "ok"), ev(2, "done", "ok")], "workflow", expected=done)
    assert "wrong-code" in rules


def test_status_retry_latency_patch_and_sut_failure_rules() -> None:
    late_status = [ev(1, "text", "a"), ev(2, "status", "Writing code..."), ev(3, "done", "a")]
    assert "status-after-text" in judged(late_status)[0]
    assert "status-after-text" not in judged(late_status, requested_order="text_first")[0]
    failed = [ev(1, "error", "", message="rate limited")]
    assert "retry-after-ignored" in judged(failed, retry_after_s=2.0)[0]
    slow = [ev(1, "text", "a"), ev(50, "done", "a", latency_ms=80.0)]
    assert "latency-mismatch" in judged(slow, upstream_window_ms=(1.0, 40.0))[0]
    fast = [ev(1, "text", "a"), ev(50, "done", "a", latency_ms=2.0)]
    assert "latency-mismatch" in judged(fast, upstream_window_ms=(1.0, 40.0))[0]
    right = [ev(1, "text", "a"), ev(50, "done", "a", latency_ms=45.0)]
    assert "latency-mismatch" not in judged(right, upstream_window_ms=(1.0, 40.0))[0]
    edits = [{"action": "replace", "old_code": "a", "new_code": "b"}]
    miscounted = ev(1, "changes", code="b", code_edits=edits, patches_applied=0, warnings=[])
    rules, _ = judged([miscounted, ev(2, "done", "", code="b")], "job_code", expression="a")
    assert rules.count("patch-count") == 1  # the edit applies: patches_applied must be 1
    skipped = [{"action": "replace", "old_code": "zzz", "new_code": "b"}]
    silent = ev(1, "changes", code="a", code_edits=skipped, patches_applied=0, warnings=[])
    rules, _ = judged([silent, ev(2, "done", "", code="a")], "job_code", expression="a")
    assert rules.count("patch-count") == 1  # a skipped edit needs its warning
    assert "sut-failure" in judged([ev(1, "done", "")], status_code=500)[0]
    assert "sut-failure" in judged([ev(1, "done", "")], sut_error="RuntimeError: x")[0]


def _row(chunking: str, text: str, statuses: tuple[str, ...] = ("Thinking...",)) -> dict[str, Any]:
    return {
        "case": "c",
        "sut": "s",
        "dialect": "streambench",
        "latency": "default",
        "seed": 0,
        "fault": "",
        "chunking": chunking,
        "streamed_text": text,
        "final_code": None,
        "terminal": "done",
        "statuses": list(statuses),
    }


def test_split_and_status_variance_flag_the_odd_run_out() -> None:
    rows = [_row("events", "hello"), _row("bytes:16", "helo"), _row("utf8", "hello")]
    rows.append({**_row("deltas:1", "hello", ("Thinking...", "Other")), "fault": ""})
    rows.append({**_row("events", "he"), "fault": "truncate@event=3"})  # faults are left out
    found = cross_run_violations(rows, default_profile())
    assert sorted(found) == [1, 3]
    assert found[1][0].rule == "split-variance"
    assert "char 3" in found[1][0].message and "events, utf8, deltas:1" in found[1][0].message
    assert found[3][0].rule == "status-variance"


def test_a_run_without_code_is_inexact_not_left_out() -> None:
    from streambench.grade.quality import code_quality

    quality = code_quality(consume([ev(1, "text", "ok"), ev(2, "done", "ok")]), "x = 1")
    assert quality["code_exact"] is False and quality["code_similarity"] == 0
    assert code_quality(consume([ev(1, "done", "ok")]), None)["code_exact"] is None


def test_a_chain_that_never_waits_for_retry_after_is_flagged() -> None:
    # one provider and no retry budget: the 429's retry-after is never honoured
    impatient = "reference:providers=anthropic,max_retry_wait_s=0"
    # the same provider twice and no budget: the second attempt goes out at once, into the
    # rate limit it was just told to wait out
    hammering = "reference:providers=anthropic+anthropic,max_retry_wait_s=0"
    for sut, rules in (
        ("reference", []),
        (impatient, ["unexpected-error", "retry-after-ignored"]),
        (hammering, ["retry-after-ignored"]),
    ):
        row = run_one(RunSpec(str(FIXTURES / "retry-after-429"), sut=sut))
        assert [v["rule"] for v in row["violations"]] == rules, sut
    assert (
        "again 300 ms after its 429/529 asked for retry-after 2 s"
        in row["violations"][0]["message"]
    )


def test_metadata_status_and_patch_bugs_are_flagged_where_they_show() -> None:
    suts = [
        f"tests.suts.broken:{n}"
        for n in ("seconds_latency", "status_pings", "counted_patches", "previous_turn")
    ]
    frame = run_matrix(Matrix(cases=[str(FIXTURES)], suts=suts, chunkings=["events"]))

    def flagged(sut: str, rule: str) -> set[str]:
        runs = frame[frame["sut"] == f"tests.suts.broken:{sut}"]
        return {r.case for r in runs.itertuples() if any(v["rule"] == rule for v in r.violations)}

    # a refused request has no stream and no upstream call: only the HTTP rules judge it
    everything = set(frame["case"]) - REFUSED
    # a max_tokens stop mid-code, or a malformed answer, ends in error: no final message
    # carries latency_ms
    assert flagged("seconds_latency", "latency-mismatch") == everything - {
        "job-max-tokens-mid-code",
        *MALFORMED,
    }
    # text-first requests write their code after the text: statuses there are expected; where
    # no text is shown (an empty answer, a stop mid-code, a key without its colon) no status
    # can follow it; a JSON answer has no order to see
    assert flagged("status_pings", "status-after-text") == everything - {
        "job-text-first",
        "workflow-text-first",
        "chat-empty",
        "job-max-tokens-mid-code",
        "job-equals-for-colon",
        "http-json-answer",
    }
    # only where an edit is skipped does counting the edits differ from counting the patches
    assert flagged("counted_patches", "patch-count") == {
        "job-replace-ambiguous",
        "job-replace-no-match",
        "job-new-code-brackets",
    }
    # a new thread has no previous question: every upstream request asks nothing
    assert flagged("previous_turn", "wrong-prompt") == everything
    # these apps route POST /messages only: GET /threads/.../messages is starlette's plain 404
    assert flagged("previous_turn", "wrong-json-answer") == {"http-unknown-thread-messages"}
    other = {v["rule"] for vs in frame["violations"] for v in vs}
    assert other == {
        "latency-mismatch",
        "status-after-text",
        "patch-count",
        "wrong-prompt",
        "wrong-json-answer",
    }


def test_shrink_leaves_cross_run_rules_alone(tmp_path: Path) -> None:
    from streambench.uses.shrink import shrink_failures

    matrix = Matrix(
        cases=[str(FIXTURES / "chat-hello")],
        suts=["tests.suts.broken:lossy_lines"],
        chunkings=["events", "deltas:1", "bytes:16"],
    )
    rows = run_matrix(matrix).to_dict(orient="records")
    shrunk = shrink_failures(rows, tmp_path, budget_s=5, cases=FIXTURES)
    assert "split-variance" in {v["rule"] for row in rows for v in row["violations"]}
    assert {rule for _, _, rule in shrunk} == {"unexpected-error"}


def test_a_fault_aimed_at_the_serving_upstream_or_skipped_where_it_cannot_apply() -> None:
    fault = "disconnect@text=20,call=served,else=skip"
    cases = [str(FIXTURES / n) for n in ("failover-openai-chat", "chat-empty", "chat-hello")]
    matrix = Matrix(cases=cases, chunkings=["events"], faults=[(fault,)])
    frame = run_matrix(matrix)
    # the empty answer has no 20th character: left out, and said so
    assert sorted(frame["case"]) == ["chat-hello", "failover-openai-chat"]
    assert [(s.case_path, why) for s, why in matrix.skipped] == [
        (
            f"{cases[1]}/case.yaml",
            f"fault {fault!r}: text=20 is past the end (0 content characters)",
        )
    ]
    failover = frame[frame["case"] == "failover-openai-chat"].iloc[0]
    # upstream 1's 529 falls through; upstream 2 is cut after content: error with its prefix
    assert failover["expected_terminal"] == "error" and failover["terminal"] == "error"
    assert failover["upstream_calls"] == 2 and failover["violations"] == []
    assert "Hello from the second provider.".startswith(failover["streamed_text"])
    assert failover["streamed_text"]
    # aimed at a call the case does not have, or never skipped: the spec is the error
    with pytest.raises(Exception, match="past the end"):
        run_matrix(Matrix(cases=cases[1:2], chunkings=["events"], faults=[("disconnect@text=20",)]))
    from streambench.replay import parse_fault

    assert parse_fault("disconnect@text=1,call=2").aim.call == 2
    for bad, why in (("call=0", "call= must be"), ("else=run", "else= takes 'skip'")):
        with pytest.raises(Exception, match=why):
            parse_fault(f"disconnect@text=1,{bad}")
