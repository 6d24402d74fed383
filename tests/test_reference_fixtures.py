"""Every bundled case, under transport and content splits, on virtual time, through the app."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from reference_harness import run_reference
from streambench.answer import prefill_for
from streambench.replay import build_plan, virtual_time
from streambench.runner.cases import Case, load_cases
from streambench.transcript import load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# the HTTP surface (refusals, the JSON answer) is tests/test_http_cases.py's
CASES = [case for case in load_cases([FIXTURES]) if not case.has_http]
# answers that are not JSON: the reference must say they are unusable, as for a stop mid-code
MALFORMED = {"job-junk-after-text", "job-equals-for-colon"}
CHUNKINGS = ["bytes:1", "random", "deltas:1", "deltas:adversarial"]
FULL = bool(os.environ.get("STREAMBENCH_FULL"))
SEEDS = range(3) if FULL else range(1)
# One byte per chunk is ~8000 virtual sleeps per case at modelled latency: in the short form
# every byte still goes through the stack one at a time, but all at the same virtual moment.
LATENCY = {"bytes:1": None if FULL else "const:ttfb=300,gap=0"}
STRUCT_KEYS = {"job_code": "code_edits", "workflow": "yaml"}


def _struct_end(answer: str, key: str) -> int:
    """Index in ``answer`` just past the value of top-level ``key``, walked with json itself."""
    decoder = json.JSONDecoder(strict=False)  # a raw tab in a string: job-raw-tab-in-code
    i = answer.index("{") + 1
    while True:
        i = answer.index('"', i)
        name, i = decoder.raw_decode(answer, i)
        i = answer.index(":", i) + 1
        while answer[i] in " \t\r\n":
            i += 1
        _, i = decoder.raw_decode(answer, i)
        if name == key:
            return i
        i = answer.index(",", i) + 1


def _changes_ready_s(case: Case, run: Any) -> float:
    """Loop time at which the last upstream plan's content completed the structured member."""
    plan = run.upstream.replay.plans[-1]
    deltas = [(t, text) for t, kind, text in plan.content_timeline if kind == "text"]
    answer = "".join(text for _, text in deltas)
    whole = answer.lstrip().startswith(("```", '{\n  "code_edits"', '{"code_edits"'))
    prefix = "" if whole and plan.api == "openai-chat" else prefill_for(case.mode, _order(case))
    end = _struct_end(prefix + answer, STRUCT_KEYS[case.mode]) - len(prefix)
    seen = 0
    for t_ms, text in deltas:
        seen += len(text)
        if seen >= end:
            return run.upstream.sent_at[-1] + t_ms / 1000
    raise AssertionError("structured member never completed upstream")


def _order(case: Case) -> Any:
    return case.request.get("order", "changes_first")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("chunking", CHUNKINGS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@virtual_time
async def test_case_streams_exactly_the_expected_answer(
    case: Case, chunking: str, seed: int
) -> None:
    plans = [build_plan(load(p), chunking, LATENCY.get(chunking), seed=seed) for p in case.upstream]
    run = await run_reference(plans, case.request_body(), max_retry_wait_s=10.0)

    names = [name for name, _ in run.data]
    assert names[:3] == ["thread", "user", "status"]
    assert run.of("status")[0] == {"message": "Thinking..."}
    terminal, final = run.terminal
    assert names.count("done") + names.count("error") == 1
    if case.name == "job-max-tokens-mid-code":  # the model stopped mid-code: nothing to apply
        assert terminal == "error" and "unusable" in final["message"], final
        assert run.of("changes") == [] and run.streamed_text == case.expect_text
        return
    if case.name in MALFORMED:
        assert terminal == "error" and "unusable" in final["message"], final
        # changes that arrived before the bad character carry the expected code (junk-after-text)
        assert all(change["code"] == case.expect_code for change in run.of("changes"))
        assert case.expect_text.startswith(run.streamed_text)
        return
    assert terminal == "done", final
    assert run.streamed_text == final["content"] == case.expect_text
    assert all(chunk["content"] for chunk in run.of("chunk"))
    changes = run.of("changes")
    if case.mode == "chat":
        assert changes == []
        return
    assert len(changes) == 1
    if case.mode == "job_code":
        assert changes[0]["code"] == final["code"] == case.expect_code
    else:
        assert changes[0]["yaml"] == final["yaml"] == case.expect_yaml
    changes_index = names.index("changes")
    first_chunk = names.index("chunk")
    if _order(case) == "changes_first":
        assert changes_index < first_chunk
    else:
        assert changes_index > first_chunk
    # changes leaves in the same virtual millisecond the structured JSON completed upstream
    assert run.time_of("changes") == pytest.approx(_changes_ready_s(case, run), abs=0.0005)
