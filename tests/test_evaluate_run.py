"""End to end: SUTs over replays, exact metrics on a hand-timed replay, rule verdicts of naive
SUTs vs the reference, --sut-cmd, the default matrix, reports, gate."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tests.conftest import chromium_page, free_port, needs_chromium

from streambench.cli import main
from streambench.report.files import REPORT_FILES, load_results
from streambench.runner.cases import load_case
from streambench.runner.matrix import MID_STREAM_FAULT, Matrix, RunSpec, run_matrix, run_one
from streambench.transcript import Meta, Request, Response, Transcript, save

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
NAIVE = "tests.suts.naive:app"
RETRYING = "tests.suts.naive:retrying_app"


def anthropic_body(*texts: str) -> bytes:
    """An anthropic-messages stream: 2 envelope events, one delta per text, 3 closing events."""
    events = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "m",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": "claude",
                    "usage": {"input_tokens": 1, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        *[
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": t},
                },
            )
            for t in texts
        ],
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 5},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return "".join(f"event: {e}\ndata: {json.dumps(d)}\n\n" for e, d in events).encode()


def write_case(
    folder: Path, mode: str, upstreams: list[bytes], expect: dict[str, str], code: str = ""
) -> Path:
    names = []
    for i, body in enumerate(upstreams):
        transcript = Transcript(
            Meta("anthropic", "anthropic-messages"),
            Request("POST", "https://api.anthropic.com/v1/messages"),
            Response(200, {"content-type": "text/event-stream"}, body),
        )
        save(transcript, folder / f"upstream-{i}.yaml")
        names.append(f"upstream-{i}.yaml")
    case = {
        "name": folder.name,
        "mode": mode,
        "request": {"content": "go", "context": {"expression": code}},
        "upstream": names,
        "expect": expect,
    }
    (folder / "case.yaml").write_text(yaml.safe_dump(case))
    return folder / "case.yaml"


def test_every_metric_on_a_hand_timed_replay(tmp_path: Path) -> None:
    # const:ttfb=100,gap=10 and one chunk per event: event i arrives at 100 + 10 i ms.
    # Deltas are events 2, 3, 4 (t = 120, 130, 140); message_stop is event 7 (t = 170).
    deltas = [
        '{"action": "rewrite", "new_code": "y = 2"}',
        '],\n  "text_answer": "Set y',
        ' to 2."\n}',
    ]
    case = write_case(
        tmp_path / "timed",
        "job_code",
        [anthropic_body(*deltas)],
        {"text": "Set y to 2.", "code": "y = 2"},
        "y = 1",
    )
    row = run_one(RunSpec(str(case), chunking="events", latency="const:ttfb=100,gap=10"))
    assert row["violations"] == []
    assert row["ttfb_ms"] == 0.0  # thread, user and the first status go out before the upstream
    assert row["ttfs_ms"] == 0.0
    assert row["ttfc_ms"] == 130.0  # the "]" that closes code_edits arrives at 130
    assert row["changes_lag_ms"] == 0.0
    assert row["ttft_ms"] == 130.0  # "Set y" rides in the same delta
    assert row["useful_ms"] == 130.0
    assert row["total_ms"] == 170.0
    assert row["text_lag_p50_ms"] == 0.0 and row["text_lag_p95_ms"] == 0.0
    assert row["n_text_chunks"] == 2.0
    assert (row["chunk_chars_p50"], row["chunk_chars_max"]) == (5.5, 6.0)  # "Set y", " to 2."
    assert (row["gap_ms_p50"], row["gap_ms_p95"]) == (10.0, 10.0)
    assert (row["code_exact"], row["code_similarity"]) == (True, 100.0)
    assert row["provisional_code"] == row["final_code"] == "y = 2"
    assert row["upstream_calls"] == 1


def test_a_naive_sut_is_flagged_and_the_reference_is_clean() -> None:
    cases = [str(FIXTURES)]
    frame = run_matrix(
        Matrix(
            cases=cases,
            suts=["reference", NAIVE],
            chunkings=["deltas:adversarial"],
        )
    )
    naive = frame[frame["sut"] == NAIVE]
    naive_rules = {v["rule"] for vs in naive["violations"] for v in vs}
    assert {"escape-leak", "json-leak", "missing-changes"} <= naive_rules
    reference = frame[frame["sut"] == "reference"]
    # Every fixture is clean, including those that ask for the older text-first order.
    assert reference["violations"].map(len).sum() == 0
    assert {"job-text-first", "workflow-text-first"} <= set(reference["case"])
    # done everywhere but where the recording stops inside the code or is not JSON: there it
    # says the answer is unusable; a refused request has no stream at all
    refused = {name for name in set(reference["case"]) if load_case(FIXTURES / name).refused}
    assert {"http-bad-body", "http-unknown-thread", "http-deep-body"} <= refused
    answered = reference[~reference["case"].isin(refused)]
    assert (answered["terminal"] == answered["expected_terminal"]).all()
    assert set(reference[reference["terminal"] != "done"]["case"]) == refused | {
        "job-max-tokens-mid-code",
        "job-junk-after-text",
        "job-equals-for-colon",
    }


def test_retrying_after_shown_text_is_a_duplicate_after_failover(tmp_path: Path) -> None:
    answer = anthropic_body("Hello ", "from the ", "provider.")
    case = write_case(
        tmp_path / "chain", "chat", [answer, answer], {"text": "Hello from the provider."}
    )
    spec = {"chunking": "events", "faults": ("disconnect@event=4",)}
    naive = run_one(RunSpec(str(case), sut=RETRYING, **spec))
    assert naive["streamed_text"] == "Hello from the Hello from the provider."
    rules = [v["rule"] for v in naive["violations"]]
    assert rules == ["wrong-text", "done-after-truncation", "duplicate-after-failover"]
    reference = run_one(RunSpec(str(case), **spec))
    assert reference["terminal"] == "error"
    assert reference["violations"] == []  # no retry, and partial_content is what was shown
    fell_through = run_one(
        RunSpec(str(case), sut=RETRYING, chunking="events", faults=("http:529@start",))
    )
    assert fell_through["violations"] == [] and fell_through["upstream_calls"] == 2


def test_an_http_sut_started_with_sut_cmd_gives_the_in_process_verdicts() -> None:
    port = free_port()
    cases = [str(FIXTURES / "job-unicode-escaped"), str(FIXTURES / "job-text-first")]
    axes = {
        "cases": cases,
        "chunkings": ["deltas:adversarial"],
        "latencies": ["scale:0.05"],
        "faults": [(), ("http:529@start",)],
    }
    executable = shutil.which("streambench", path=str(Path(sys.executable).parent))
    assert executable is not None
    over_http = run_matrix(
        Matrix(
            suts=[f"http://127.0.0.1:{port}/messages"],
            sut_cmd=f"{executable} reference-server --port {port}",
            **axes,
        )
    )
    in_process = run_matrix(Matrix(**axes))

    def verdicts(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[str, list[str]]]:
        return {
            (row["case"], row["fault"]): (
                row["terminal"],
                sorted(v["rule"] for v in row["violations"]),
            )
            for _, row in frame.iterrows()
        }

    assert (
        verdicts(over_http)
        == verdicts(in_process)
        == {
            ("job-text-first", ""): ("done", []),
            ("job-unicode-escaped", ""): ("done", []),
            # the only upstream answers 529: the chain has nowhere to fall through to
            ("job-text-first", "http:529@start"): ("error", []),
            ("job-unicode-escaped", "http:529@start"): ("error", []),
        }
    )
    assert list(over_http["streamed_text"]) == list(in_process["streamed_text"])


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``streambench run`` with no arguments, from a folder holding only the fixtures."""
    root = tmp_path_factory.mktemp("clone")
    shutil.copytree(FIXTURES, root / "fixtures")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        with pytest.raises(SystemExit) as exit_info:
            main(["run", "--jobs", "2", "--format", "json"])
    assert exit_info.value.code in (0, None)
    return root / "reports"


def test_run_without_arguments_writes_all_five_reports(default_run: Path) -> None:
    for name in REPORT_FILES:
        assert (default_run / name).stat().st_size > 0, name
    frame = load_results(default_run)
    # the fixtures x 6 chunkings, the second seed's cells and the mid-stream fault's
    assert len(frame) == len(Matrix(cases=[str(FIXTURES)]).specs())
    assert set(frame["seed"]) == {0, 1} and set(frame["fault"]) == {"", MID_STREAM_FAULT}
    assert frame["n_violations"].sum() == 0
    assert set(frame["chunking"]) >= {"events", "deltas:1", "deltas:adversarial"}
    junit = (default_run / "junit.xml").read_text()
    assert junit.count("<testcase") == len(frame)
    assert "| sut | chunking |" in (default_run / "summary.md").read_text()
    assert (default_run / "report.html").stat().st_size <= 1_500_000  # issue #16's budget


def test_run_reports_misuse_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "run",
                "--case",
                str(FIXTURES / "chat-hello"),
                "--chunking",
                "bytes:0",
                "--out",
                str(tmp_path),
            ]
        )
    assert exit_info.value.code == 2
    assert "bytes:0" in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        with pytest.raises(SystemExit) as exit_info:
            main(["run"])
    assert exit_info.value.code == 2
    assert "no fixtures/ folder here" in capsys.readouterr().err


def _gate(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(["gate", *args])
    return int(exit_info.value.code or 0)


def test_gate_thresholds_rules_and_baseline(
    default_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = load_results(default_run)
    p95 = float(frame["ttfc_ms"].dropna().quantile(0.95))
    thresholds = tmp_path / "t.yaml"
    thresholds.write_text(
        f"metrics:\n  ttfc_ms: {{p95: {{max: {p95 + 1}}}}}\nrules:\n  escape-leak: 0\n"
    )
    assert _gate([str(default_run), "--thresholds", str(thresholds)]) == 0
    thresholds.write_text(f"metrics:\n  ttfc_ms: {{p95: {{max: {p95 - 100}}}}}\n")
    assert _gate([str(default_run), "--thresholds", str(thresholds)]) == 1
    assert "(+100.0 beyond)" in capsys.readouterr().out
    thresholds.write_text('rules:\n  "*": 0\n')  # the reference is clean on the default matrix
    assert _gate([str(default_run), "--thresholds", str(thresholds)]) == 0
    dirty = tmp_path / "dirty.parquet"
    violation = [{"rule": "json-leak", "message": "x", "at_ms": 1.0}]
    frame.assign(violations=[violation] + [[]] * (len(frame) - 1)).to_parquet(dirty)
    assert _gate([str(dirty), "--thresholds", str(thresholds)]) == 1
    assert "rule json-leak" in capsys.readouterr().out
    # Without --thresholds: no violation of any rule is allowed.
    assert _gate([str(default_run)]) == 0
    assert _gate([str(dirty)]) == 1
    assert "rule json-leak" in capsys.readouterr().out
    # A baseline 20% faster is a regression beyond 10%.
    faster = frame.assign(ttfc_ms=frame["ttfc_ms"] / 1.2)
    faster.to_parquet(tmp_path / "base.parquet")
    thresholds.write_text("baseline:\n  ttfc_ms: {p50: {max_increase_pct: 10}}\n")
    base = str(tmp_path / "base.parquet")
    assert _gate([str(default_run), "--thresholds", str(thresholds), "--baseline", base]) == 1
    assert "+20.0%" in capsys.readouterr().out
    thresholds.write_text("metrics:\n  ttfc_ms: {p42: {max: 1}}\n")
    assert _gate([str(default_run), "--thresholds", str(thresholds)]) == 2
    assert "p42" in capsys.readouterr().err


@pytest.mark.chromium
@needs_chromium
def test_report_html_has_no_console_errors(default_run: Path) -> None:
    with chromium_page(default_run / "report.html") as (page, errors):
        runs = page.locator("details.run").count()
        dots = page.locator("#by-chunking circle").count()
    assert errors == []
    assert runs == len(load_results(default_run))
    assert dots > 0  # the distributions drew
