"""``streambench run``'s output for people: a summary per case (or any id columns), the runs
with violations, a closing line; readable at 80 and 120 columns. Machines read json/jsonl."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from streambench.cli import main
from streambench.cli.evaluate import MAX_VIOLATION_ROWS, unchecked_summary
from streambench.report.files import load_results, summarize, violation_rows
from streambench.runner.matrix import Matrix, run_matrix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAIVE = "tests.suts.naive:app"
# The longest case name, and a fault that ends some runs in error: the widest summary rows.
CASES = ["chat-unicode-json-looking", "job-unicode-escaped"]
CHUNKINGS = ["events", "deltas:adversarial"]
FAULTS = ["none", "http:529@start"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """The reference and the naive SUT on two cases x two chunkings (8 runs)."""
    matrix = Matrix(
        cases=[str(FIXTURES / c) for c in CASES],
        suts=["reference", NAIVE],
        chunkings=CHUNKINGS,
    )
    return run_matrix(matrix)


def run_cli(
    args: list[str], columns: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> tuple[str, str]:
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code in (0, None)
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_summarize_counts_and_medians_per_group(frame: pd.DataFrame) -> None:
    summary = pd.DataFrame(summarize(frame, ["sut", "case"]))
    assert list(zip(summary["sut"], summary["case"], strict=True)) == sorted(
        (s, c) for s in (NAIVE, "reference") for c in CASES
    )
    for _, row in summary.iterrows():
        runs = frame[(frame["sut"] == row["sut"]) & (frame["case"] == row["case"])]
        assert row["runs"] == len(runs) == len(CHUNKINGS)
        assert row["violations"] == runs["n_violations"].sum()
        assert row["flagged"] == (runs["n_violations"] > 0).sum()
        assert row["done"] + row["error"] + row["none"] == len(runs)
        assert row["done"] == (runs["terminal"] == "done").sum()
        ttft = runs["ttft_ms"].dropna()
        assert math.isclose(row["ttft_ms_p50"], ttft.median()) if len(ttft) else True
        exact = runs["code_exact"].dropna()
        if row["case"].startswith("chat-"):
            assert math.isnan(row["code_exact_rate"])  # chat expects no code
        else:
            assert row["code_exact_rate"] == exact.astype(bool).mean()
    reference = summary[summary["sut"] == "reference"]
    assert list(reference["violations"]) == [0, 0]
    assert summary[summary["sut"] == NAIVE]["violations"].sum() > 0


def test_summarize_gives_pandas_own_quantiles_to_the_bit(frame: pd.DataFrame) -> None:
    """summarize aggregates lists, not a pandas groupby: the same numbers as the groupby it
    replaced, on runs with gaps (NaN and missing metrics) and several groups."""
    from streambench.report.files import SUMMARY_METRICS

    runs = pd.concat([frame, frame.assign(seed=1)], ignore_index=True)
    runs.loc[::3, "ttft_ms"] = float("nan")
    runs.loc[1::4, "total_ms"] = runs.loc[1::4, "total_ms"] * 1.37 + 0.1
    runs.loc[runs["sut"] == NAIVE, "ttfc_ms"] = float("nan")  # a group without the metric
    summary = pd.DataFrame(summarize(runs, ["sut", "seed"]))
    assert len(summary) == 4
    for _, row in summary.iterrows():
        group = runs[(runs["sut"] == row["sut"]) & (runs["seed"] == row["seed"])]
        for metric in SUMMARY_METRICS:
            values = group[metric].dropna()
            for q in (50, 95):
                want = values.quantile(q / 100) if len(values) else float("nan")
                got = row[f"{metric}_p{q}"]
                assert (math.isnan(got) and math.isnan(want)) or got == want, (metric, q)
        assert row["not_checked"] == group["not_checked"].map(len).sum()


def test_violation_rows_carry_the_run_ids(frame: pd.DataFrame) -> None:
    rows = violation_rows(frame)
    assert len(rows) == frame["n_violations"].sum()
    assert {r["sut"] for r in rows} == {NAIVE}
    assert {"escape-leak"} <= {r["rule"] for r in rows if r["case"] == "job-unicode-escaped"}
    assert all(r["chunking"] in CHUNKINGS and r["message"] for r in rows)


@pytest.mark.parametrize("columns", [80, 120])
def test_the_table_format_summarises_and_fits_the_terminal(
    columns: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["run", "--sut", "reference", "--sut", NAIVE, "--out", str(tmp_path)]
    args += [a for c in CASES for a in ("--case", str(FIXTURES / c))]
    args += [a for c in CHUNKINGS for a in ("--chunking", c)]
    args += [a for f in FAULTS for a in ("--fault", f)]
    out, err = run_cli(args, columns, monkeypatch, capsys)
    lines = out.splitlines()
    # One summary table per SUT with a row per case (not per run), names whole and the last
    # column (code exact) not cropped.
    assert any("reference: runs by case" in line for line in lines)
    assert any(f"{NAIVE}: runs by case" in line for line in lines)
    rows = [line.split() for line in lines if line.split()[:1] and line.split()[0] in CASES]
    summary_rows = [r for r in rows if r[1] == str(len(CHUNKINGS) * len(FAULTS))]
    assert sorted(r[0] for r in summary_rows) == sorted(CASES * 2)
    assert all(r[-1] == "–" or r[-1].endswith("%") for r in summary_rows)
    assert any(line.split()[-1:] == ["exact"] for line in lines)
    frame = load_results(tmp_path)
    flagged = frame[frame["n_violations"] > 0]
    assert f"violations ({frame['n_violations'].sum()})" in out
    assert "escape-leak" in out
    assert (
        f"{len(frame)} runs in " in err
        and f"{len(frame) - len(flagged)} clean, {len(flagged)} with violations (" in err
    )
    assert "escape-leak " in err and str(tmp_path) in err


def test_by_groups_on_any_id_columns_and_lists_at_most_the_first_violations(
    frame: pd.DataFrame,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [
        "run",
        "--sut",
        NAIVE,
        "--by",
        "sut,chunking",
        "--out",
        str(tmp_path),
    ]
    args += ["--case", str(FIXTURES), "--chunking", "events", "--chunking", "deltas:1"]
    out, _ = run_cli(args, 120, monkeypatch, capsys)
    assert "runs by sut, chunking" in out
    frame = load_results(tmp_path)
    total = int(frame["n_violations"].sum())
    assert total > MAX_VIOLATION_ROWS
    assert f"{total - MAX_VIOLATION_ROWS} more in {tmp_path / 'summary.md'}" in out
    # Summary rows start with the sut; the violation rows' second lines with "sut · chunking".
    words = [line.split() for line in out.splitlines()]
    summary_rows = [w[:3] for w in words if len(w) > 2 and w[0] == NAIVE and w[1] != "·"]
    assert summary_rows == [
        [NAIVE, "deltas:1", str(len(frame) // 2)],
        [NAIVE, "events", str(len(frame) // 2)],
    ]


def test_a_clean_run_prints_no_violations_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "run",
        "--case",
        str(FIXTURES / "chat-hello"),
        "--out",
        str(tmp_path),
    ]
    out, err = run_cli(args, 80, monkeypatch, capsys)
    assert "runs by case" in out and "violations (" not in out
    # the default cells of one case: six chunkings, the second seed, the mid-stream fault
    runs = len(Matrix(cases=[str(FIXTURES / "chat-hello")]).specs())
    assert runs > 6
    assert f"{runs} runs in " in err and f": {runs} clean, 0 with violations; reports in" in err


def test_json_formats_keep_one_row_per_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = [
        "run",
        "--case",
        str(FIXTURES / "chat-hello"),
        "--out",
        str(tmp_path),
    ]
    out, _ = run_cli([*base, "--format", "json"], 80, monkeypatch, capsys)
    rows = json.loads(out)
    assert len(rows) == len(Matrix(cases=[str(FIXTURES / "chat-hello")]).specs())
    assert {r["case"] for r in rows} == {"chat-hello"}
    out, _ = run_cli([*base, "--format", "jsonl"], 80, monkeypatch, capsys)
    assert [json.loads(line)["chunking"] for line in out.splitlines()] == [
        r["chunking"] for r in rows
    ]


@pytest.mark.parametrize("terminal", [False, True])
def test_progress_is_drawn_on_a_terminal_only_and_never_on_stdout(
    terminal: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A long run shows its progress on a terminal's stderr; a log (CI, a pipe) gets none of
    it, and stdout (``--format json`` for machines) never does."""
    import io

    from rich.console import Console

    import streambench.cli

    drawn = io.StringIO()
    console = Console(file=drawn, force_terminal=terminal, width=80)
    monkeypatch.setattr(streambench.cli, "err_console", console)
    args = ["run", "--case", str(FIXTURES / "chat-hello"), "--out", str(tmp_path)]
    out, _ = run_cli([*args, "--format", "json"], 80, monkeypatch, capsys)
    runs = len(json.loads(out))  # stdout is the rows alone: 6 chunkings and the extra cells
    assert runs > 6
    assert (f"{runs}/{runs}" in drawn.getvalue()) is terminal
    assert ("runs" in drawn.getvalue()) is terminal


def test_by_rejects_unknown_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--case", str(FIXTURES / "chat-hello"), "--by", "case,colour"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--by 'case,colour'" in err


def test_a_naive_failure_is_explained_in_one_row_with_rule_ms_and_what_was_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "run",
        "--case",
        str(FIXTURES / "job-unicode-escaped"),
        "--sut",
        NAIVE,
    ]
    args += ["--chunking", "deltas:1", "--out", str(tmp_path)]
    out, _ = run_cli(args, 160, monkeypatch, capsys)
    frame = load_results(tmp_path)
    leak = next(v for v in violation_rows(frame) if v["rule"] == "escape-leak")
    # The user saw the first half of a cut \u00e9: a literal backslash, not '\\\\'.
    assert leak["excerpt"].endswith("Escaped: \\u0")
    row = next(line for line in out.splitlines() if "escape-leak" in line)
    assert f" {leak['at_ms']:g} " in row and "Escaped: \\u0" in row and "\\\\" not in row
    junit = (tmp_path / "junit.xml").read_text()
    assert "at None ms" not in junit
    assert f"escape-leak at {leak['at_ms']:g} ms: " in junit
    assert "the user saw: Escaped: \\u0" in junit
    summary = (tmp_path / "summary.md").read_text()
    assert "## Smoothness" in summary and "ITL/token ms p50 (GenAI-Perf)" in summary
    assert "| escape-leak | tests.suts.naive:app | 1 | 1 |" in summary


def test_sut_errors_and_whole_run_violations_are_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "run",
        "--case",
        str(FIXTURES / "chat-hello"),
        "--sut",
        NAIVE,
        "--chunking",
        "events",
    ]
    args += ["--fault", "disconnect@event=5", "--out", str(tmp_path)]
    out, _ = run_cli(args, 160, monkeypatch, capsys)
    row = next(line for line in out.splitlines() if "terminal-count" in line)
    assert " end " in row
    assert "RemoteProtocolError" in out
    junit = (tmp_path / "junit.xml").read_text()
    assert "terminal-count at the end: " in junit and "sut_error: RemoteProtocolError" in junit


def test_checks_not_possible_are_counted_per_rule_or_grouped_by_run_when_many() -> None:
    few = unchecked_summary(["a", "a", "b"], [["latency-mismatch"], ["patch-count"], []])
    assert few == "2 checks not possible (latency-mismatch 1, patch-count 1)"
    stream_rules = [f"rule-{k:02d}" for k in range(25)]  # what a refused request cannot check
    cases = ["http-bad-body"] * 9 + ["http-unknown-thread"] * 9 + ["http-json-answer"] * 9
    lists = [stream_rules] * 18 + [stream_rules[:8]] * 9
    assert unchecked_summary([*cases, "chat-hello"], [*lists, []]) == (
        "522 checks not possible (25 rules on 18 runs of http-bad-body and 1 more case;"
        " 8 rules on 9 runs of http-json-answer)"
    )
    assert unchecked_summary(["a"], [[]]) == ""
