"""streambench shrink: explicit plans (cuts:, deltas:at=), the reduction search on the naive
SUT's three bugs, the generated pytest file (naive fails, reference passes), determinism,
the budget, and the CLI front doors."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from tests.conftest import cli_exit_code

from streambench.errors import SpecError
from streambench.replay import build_plan, parse_chunking
from streambench.replay.deltas import content_deltas, with_contents
from streambench.replay.frames import frames_of
from streambench.runner.matrix import RunSpec, run_one
from streambench.transcript import load, save
from streambench.transcript.synth import make_transcript, render
from streambench.uses.shrink import ddmin, json_spans, shrink_run

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]
NAIVE = "tests.suts.naive:app"


def _stream(api: str = "anthropic-messages", deltas: tuple[str, ...] = ("ab", "cdef", "g")):
    body = render(api, deltas=list(deltas))
    return make_transcript(api, body, request_body={"stream": True})


def _text_deltas(transcript) -> list[str]:
    api = transcript.meta.api
    return [text for _, _, text in content_deltas(api, frames_of(api, transcript.response.body))]


# ----------------------------------------------------------------------------- the specs


def test_cuts_spec_ends_chunks_exactly_there() -> None:
    plan = build_plan(_stream(), "cuts:5,40,9999")
    ends = [len(c.data) for c in plan.chunks]
    assert ends[:2] == [5, 35] and sum(ends) == len(plan.body) and len(ends) == 3
    assert parse_chunking("cuts:5,40").transport.spec == "cuts:5,40"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cuts:9,3", "offsets must increase: 3 after 9"),
        ("cuts:x", "offset 'x' is not an integer >= 1"),
        ("cuts:0", "offset '0' is not an integer >= 1"),
        ("deltas:at=2/x", "offset 'x'"),
        ("deltas:at=1,after=2", "unknown option 'after'"),
    ],
)
def test_bad_explicit_plans_name_the_spec(spec: str, message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)) as error:
        parse_chunking(spec)
    assert repr(spec) in str(error.value)


def test_deltas_at_cuts_the_content_at_those_offsets() -> None:
    plan = build_plan(_stream(deltas=("abcdefg",)), "deltas:at=2/6")
    texts = [text for _, kind, text in plan.content_timeline if kind == "text"]
    assert texts == ["ab", "cdef", "g"]
    # a cut on an existing boundary or past the end changes nothing
    same = build_plan(_stream(deltas=("ab", "cdefg")), "deltas:at=2/99")
    assert [t for _, _, t in same.content_timeline] == ["ab", "cdefg"]


def test_deltas_at_numbers_streams_by_first_appearance() -> None:
    # openai-chat: text in choice 0 content; a thinking stream would be a second slot
    body = render("anthropic-messages", deltas=["abcd"], thinking="wxyz")
    transcript = make_transcript("anthropic-messages", body, request_body={})
    plan = build_plan(transcript, "deltas:at=1,at1=3")
    pieces = [(kind, text) for _, kind, text in plan.content_timeline]
    assert pieces == [("thinking", "w"), ("thinking", "xyz"), ("text", "abc"), ("text", "d")]


@pytest.mark.parametrize("api", ["anthropic-messages", "openai-chat", "openai-responses"])
def test_with_contents_keeps_the_provider_shape(api: str) -> None:
    transcript = _stream(api)
    frames = frames_of(api, transcript.response.body)
    deltas = content_deltas(api, frames)
    texts = {deltas[0][0]: None, deltas[1][0]: "X"}
    reduced, kept = with_contents(api, frames, texts)
    body = b"".join(f.raw for f in reduced)
    plan = build_plan(make_transcript(api, body, request_body={}))
    assert plan.content() == "Xg"
    assert "".join(t for _, _, t in content_deltas(api, reduced)) == "Xg"
    assert len(kept) == len(reduced) <= len(frames)
    if api == "openai-responses":
        numbers = [json.loads(f.event.data)["sequence_number"] for f in reduced if f.event]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_json_spans_skip_brackets_inside_strings() -> None:
    text = '{"a": "x}\\""}, {"b": [1, 2]}], "t": "]"}'
    assert [text[a:b] for a, b in json_spans(text)] == ['{"a": "x}\\""}', "[1, 2]", '{"b": [1, 2]}']


def test_ddmin_finds_a_one_minimal_subset() -> None:
    calls: list[list[int]] = []

    def fails(items: list[int]) -> bool:
        calls.append(items)
        return 3 in items and 7 in items

    assert ddmin(list(range(10)), fails) == [3, 7]
    assert ddmin([1, 2], lambda items: True) == []


# ------------------------------------------------------------------ the naive SUT's bugs


def _shrink(tmp_path: Path, case: str, rule: str, chunking: str, sut: str = NAIVE, **kw):
    spec = RunSpec(
        str(ROOT / "fixtures" / case), sut, chunking=chunking, faults=kw.pop("faults", ())
    )
    # a budget far above the search: these tests check where it ends, not how fast
    return shrink_run(spec, rule, tmp_path / kw.pop("out", "out"), budget_s=600, **kw)


def _rerun(result, sut: str = NAIVE) -> dict:
    v = result.variant
    spec = RunSpec(
        str(result.case_dir / "case.yaml"),
        sut,
        chunking=v.chunking,
        latency=v.latency,
        faults=v.faults,
    )
    return run_one(spec)


def test_escape_leak_shrinks_to_one_escape_in_at_most_three_deltas(tmp_path: Path) -> None:
    result = _shrink(tmp_path, "job-unicode-escaped", "escape-leak", "deltas:adversarial")
    assert result.complete
    assert result.after.events < result.before.events // 4
    assert result.after.chars < result.before.chars // 2
    transcript = load(result.case_dir / "upstream.yaml")
    plan = build_plan(transcript, result.variant.chunking, None)
    texts = [text for _, kind, text in plan.content_timeline if kind == "text"]
    assert len(texts) <= 3 and len(plan.chunks) - 1 <= 2
    assert "".join(texts).count("\\") == 1  # one backslash escape is what leaks
    assert "escape-leak" in {v["rule"] for v in _rerun(result)["violations"]}


def test_missing_changes_shrinks_to_a_delimiter_whitespace_difference(tmp_path: Path) -> None:
    result = _shrink(tmp_path, "job-compact-json", "missing-changes", "random:min=1,max=64")
    upstream = result.case_dir / "upstream.yaml"
    transcript = load(upstream)
    answer = "".join(_text_deltas(transcript))
    assert answer == '],"text_answer":""}'
    # the same case with the delimiter the naive SUT waits for gets its changes (its other
    # bug, streaming the closing '"}' as text, is another rule's)
    fixed = answer.replace('],"text_answer":"', '],\n  "text_answer": "')
    body = render("anthropic-messages", deltas=[fixed])
    save(make_transcript("anthropic-messages", body, request_body={}), upstream)
    assert "missing-changes" not in {v["rule"] for v in _rerun(result)["violations"]}


def test_duplicate_after_failover_shrinks_to_one_fault_and_two_calls(tmp_path: Path) -> None:
    result = _shrink(
        tmp_path,
        "chat-hello",
        "duplicate-after-failover",
        "bytes:16",
        sut="tests.suts.naive:retrying_app",
        faults=("stall@event=2,ms=10", "disconnect@event=9"),
    )
    assert len(result.variant.faults) == 1 and result.variant.faults[0].startswith("disconnect")
    row = _rerun(result, "tests.suts.naive:retrying_app")
    assert row["upstream_calls"] == 2
    assert "duplicate-after-failover" in {v["rule"] for v in row["violations"]}


def test_the_generated_test_fails_on_naive_and_passes_on_the_reference(
    tmp_path: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _shrink(tmp_path, "job-unicode-escaped", "escape-leak", "bytes:16")
    pytester.syspathinsert(ROOT)
    outcome = pytester.runpytest_subprocess(str(result.test_file), "-p", "no:cacheprovider")
    outcome.assert_outcomes(failed=1)
    monkeypatch.setenv("STREAMBENCH_SUT", "reference")
    outcome = pytester.runpytest_subprocess(str(result.test_file), "-p", "no:cacheprovider")
    outcome.assert_outcomes(passed=1)


def test_shrinking_is_deterministic(tmp_path: Path) -> None:
    first = _shrink(tmp_path, "job-tabs-crlf", "escape-leak", "deltas:random", out="a")
    second = _shrink(tmp_path, "job-tabs-crlf", "escape-leak", "deltas:random", out="b")
    files = sorted(p.name for p in first.case_dir.iterdir())
    assert files == sorted(p.name for p in second.case_dir.iterdir())
    for name in files:
        assert (first.case_dir / name).read_bytes() == (second.case_dir / name).read_bytes()


def test_shrinking_stops_within_its_budget(tmp_path: Path) -> None:
    spec = RunSpec(str(ROOT / "fixtures" / "workflow-quotes"), NAIVE, chunking="deltas:1")
    started = time.monotonic()
    result = shrink_run(spec, "escape-leak", tmp_path, budget_s=1.0)
    # one run may be under way when the budget ends, plus writing the case
    assert time.monotonic() - started < 10
    assert not result.complete
    assert "escape-leak" in {v["rule"] for v in _rerun(result)["violations"]}


# ---------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def naive_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("naive")
    argv = ["run", "--case", str(ROOT / "fixtures" / "job-compact-json")]
    argv += ["--case", str(ROOT / "fixtures" / "chat-hello"), "--sut", NAIVE]
    assert cli_exit_code([*argv, "--chunking", "bytes:16", "--out", str(out)]) == 0
    return out


def test_cli_shrinks_the_first_failing_run(
    naive_results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_exit_code(["shrink", str(naive_results), "--rule", "missing-changes"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"missing-changes: \d+ events, .* -> \d+ events", err)
    assert "reproduce: streambench run --case" in err
    assert (naive_results / "shrunk" / "job-compact-json-missing-changes" / "case.yaml").is_file()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--run", "no such run"], "--run: 'no such run': no such row number or run id"),
        (["--case", "chat-hello"], "no failing run in the results with case 'chat-hello'"),
        (["--run", "0", "--rule", "escape-leak"], "does not break 'escape-leak'"),
    ],
)
def test_cli_misuse_is_one_line(
    naive_results: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    assert cli_exit_code(["shrink", str(naive_results), *options]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_run_shrink_links_each_failing_run_to_its_case(tmp_path: Path) -> None:
    from streambench.report.files import load_results

    argv = ["run", "--case", str(ROOT / "fixtures" / "job-compact-json"), "--sut", NAIVE]
    argv += ["--chunking", "events", "--out", str(tmp_path), "--shrink"]
    assert cli_exit_code(argv) == 0
    row = load_results(tmp_path).iloc[0]
    # the first violated rule is linked; outcome rules come first in the registry
    assert row["violations"][0]["rule"] == "wrong-text"
    assert row["shrunk_case"] == "shrunk/job-compact-json-wrong-text"
    assert (tmp_path / row["shrunk_case"] / "case.yaml").is_file()


def test_bench_shrink_short_form_prints_its_medians() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "benchmarks/bench_shrink.py", "--limit", "1", "--budget-s", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert re.search(r"median reduction: events [\d.]+x, characters [\d.]+x", done.stdout)
