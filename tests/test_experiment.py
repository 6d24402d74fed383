"""Paired-difference statistics of `streambench experiment` on synthetic result frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import chromium_page, free_port, needs_chromium, uvicorn_command

from streambench.cli import main
from streambench.errors import ConfigError
from streambench.report.files import load_results
from streambench.uses.experiment import (
    ORDER_BASELINE,
    ORDER_VARIANT,
    bootstrap_ci,
    compare,
    load_or_run,
    to_markdown,
    write_report,
)


def _rows(sut: str, ttfc: list[float], ttft: list[float], exact: list[bool]) -> list[dict]:
    return [
        {
            "case": f"case{i}",
            "sut": sut,
            "dialect": "streambench",
            "chunking": "events",
            "latency": "recorded",
            "fault": "",
            "seed": 0,
            "ttfc_ms": c,
            "ttft_ms": t,
            "total_ms": 1000.0 + i,
            "useful_ms": min(c, t),
            "code_exact": e,
        }
        for i, (c, t, e) in enumerate(zip(ttfc, ttft, exact, strict=True))
    ]


@pytest.fixture
def results() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 12
    ttfc_a = list(200 + rng.normal(0, 10, n))
    ttfc_b = [v + 400 + d for v, d in zip(ttfc_a, rng.normal(0, 20, n), strict=True)]
    ttft = [500.0] * n
    rows = _rows(ORDER_BASELINE, ttfc_a, ttft, [True] * n)
    rows += _rows(ORDER_VARIANT, ttfc_b, ttft, [True] * n)
    return pd.DataFrame(rows).sample(frac=1, random_state=3)


def test_bootstrap_ci_brackets_the_mean_and_is_seeded() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    low, high = bootstrap_ci(values, seed=7)
    assert low < values.mean() < high
    assert bootstrap_ci(values, seed=7) == (low, high)
    assert bootstrap_ci(np.array([2.0, 2.0])) == (2.0, 2.0)


def test_compare_pairs_by_variant_and_finds_the_ttfc_shift(results: pd.DataFrame) -> None:
    comparison = compare(results)
    table = comparison.table.set_index("metric")
    assert len(comparison.pairs) == 12
    ttfc = table.loc["ttfc_ms"]
    assert ttfc["ci_low"] > 300 and ttfc["ci_high"] < 500
    assert ttfc["verdict"] == "A better"
    assert table.loc["ttft_ms", "verdict"] == "no clear difference"
    assert table.loc["ttft_ms", "mean_diff"] == 0.0
    assert table.loc["code_exact", "mean_a"] == 1.0


def test_compare_skips_nan_pairs_per_metric(results: pd.DataFrame) -> None:
    results.loc[results["case"] == "case0", "ttfc_ms"] = np.nan
    table = compare(results).table.set_index("metric")
    assert table.loc["ttfc_ms", "n"] == 11
    assert table.loc["ttft_ms", "n"] == 12


def test_success_rate_verdict_prefers_higher(results: pd.DataFrame) -> None:
    results.loc[results["sut"] == ORDER_VARIANT, "code_exact"] = False
    table = compare(results).table.set_index("metric")
    assert table.loc["code_exact", "mean_diff"] == -1.0
    assert table.loc["code_exact", "verdict"] == "A better"


def test_unknown_sut_is_a_config_error(results: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="no rows for SUT 'nope'"):
        compare(results, "reference", "nope")


def test_reports_round_trip_through_files(results: pd.DataFrame, tmp_path: Path) -> None:
    results.to_csv(tmp_path / "results.csv", index=False)
    loaded = load_results(tmp_path / "results.csv", required=("sut",))
    comparison = compare(loaded)
    assert "| ttfc_ms | 12 |" in to_markdown(comparison)
    md, page, pairs = write_report(comparison, tmp_path / "out")
    assert "<svg" in page.read_text() and "<table" in page.read_text()
    assert md.read_text().startswith("# Experiment")
    assert len(pd.read_csv(pairs)) == 12
    with pytest.raises(ConfigError, match="no such results file"):
        load_results(tmp_path / "missing.parquet")
    with pytest.raises(
        ConfigError, match=r"pairs\.csv: not a streambench results file: no column sut"
    ):
        load_results(pairs, required=("sut",))


@pytest.mark.chromium
@needs_chromium
def test_experiment_html_renders_in_chromium(results: pd.DataFrame, tmp_path: Path) -> None:
    comparison = compare(results)
    _, page, _ = write_report(comparison, tmp_path)
    with chromium_page(page) as (browser, errors):
        a, b = browser.inner_text("#sut-a"), browser.inner_text("#sut-b")
        verdicts = browser.locator("#verdicts li").all_inner_texts()
        axes = [browser.get_attribute(f"svg.diffs >> nth={i}", "data-unit") for i in range(2)]
        ms_rows = browser.locator("svg.diffs[data-unit=ms] line[stroke-width='4']").count()
    assert errors == []
    assert (a, b) == (ORDER_BASELINE, ORDER_VARIANT)
    assert axes == ["ms", "rate"]  # timings and the success rate on separate axes
    timed = comparison.table[comparison.table["metric"].str.endswith("_ms")]
    assert ms_rows == len(timed) > 0  # a confidence bar per timing metric, on the ms axis
    ttfc = next(v for v in verdicts if v.startswith("ttfc_ms"))
    assert f"B ({ORDER_VARIANT}) took" in ttfc and "ms longer than A (reference)" in ttfc
    assert ttfc.endswith("A (reference) is better.")
    code = next(v for v in verdicts if v.startswith("code_exact"))
    assert "no clear difference" in code


RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "experiments"


def test_order_experiment_over_recordings_of_both_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    matrices = [str(RECORDINGS / "changes_first.yaml"), str(RECORDINGS / "text_first.yaml")]
    with pytest.raises(SystemExit) as exited:
        main(["experiment", "order", *matrices, "--out", str(tmp_path), "--format", "json"])
    assert exited.value.code in (0, None)
    rows = {row["metric"]: row for row in json.loads(capsys.readouterr().out)}
    ttfc = rows["ttfc_ms"]
    assert ttfc["n"] == 6
    # text first delays the changes: the whole interval lies above 0
    assert ttfc["ci_low"] > 0 and ttfc["verdict"] == "A better"
    assert rows["ttft_ms"]["ci_high"] < 0 and rows["ttft_ms"]["verdict"] == "B better"
    assert rows["code_exact"]["mean_a"] == rows["code_exact"]["mean_b"] == 1.0
    assert {p.name for p in tmp_path.iterdir()} == {"experiment.md", "experiment.html", "pairs.csv"}


def test_experiment_cli_misuse_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["experiment", "order", str(tmp_path / "nope.parquet")])
    assert exited.value.code == 2
    assert "nope.parquet: no such results file" in capsys.readouterr().err


# ---------------------------------------------------------------------------- real-time SUTs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CHAT_BACKEND = "tests.suts.failover:app"  # a chat backend: it never sends a changes event


def _matrix(tmp_path: Path) -> Path:
    path = tmp_path / "matrix.yaml"
    cases = [str(FIXTURES / "job-basic-replace"), str(FIXTURES / "chat-hello")]
    data = {
        "case": cases,
        "chunking": ["events", "bytes:16"],
        "latency": "const:ttfb=5,gap=1",
        "seed": 0,
        "fault": "none",
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_sut_that_never_sends_changes_reads_n_0_not_no_clear_difference(
    tmp_path: Path,
) -> None:
    results = load_or_run([_matrix(tmp_path)], CHAT_BACKEND, "reference")
    table = compare(results, CHAT_BACKEND, "reference").table.set_index("metric")
    assert table.loc["ttfc_ms", "verdict"] == "A never sent changes (n=0)"
    assert table.loc["ttfc_ms", "n"] == 0
    # text came from both: a real comparison
    assert table.loc["ttft_ms", "n"] == 4 and "n=0" not in table.loc["ttft_ms", "verdict"]
    assert "run_order" not in results.columns  # both in virtual time: nothing to interleave


def test_two_real_time_suts_run_interleaved_over_http_with_sut_cmd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    over_http = f"http://127.0.0.1:{port}/messages"
    in_real_time = "reference:clock=real"
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "experiment",
                "order",
                str(_matrix(tmp_path)),
                "--baseline",
                over_http,
                "--variant",
                in_real_time,
                "--sut-cmd",
                uvicorn_command(CHAT_BACKEND, port),
                "--out",
                str(tmp_path / "out"),
            ]
        )
    assert exited.value.code in (0, None)
    out = capsys.readouterr().out
    assert "runs interleaved: 2 pairs A then B, 2 B then A" in out
    assert "A never sent changes (n=0)" in out
    pairs = pd.read_csv(tmp_path / "out" / "pairs.csv")
    # ABBA: each variant's two runs side by side, the first SUT alternating
    runs = sorted(
        [(row.run_order_a, "A") for row in pairs.itertuples()]
        + [(row.run_order_b, "B") for row in pairs.itertuples()]
    )
    assert [side for _, side in runs] == list("ABBAABBA")
    assert sorted(pairs["order"]) == ["AB", "AB", "BA", "BA"]
    assert "Runs interleaved (real time)" in (tmp_path / "out" / "experiment.md").read_text()
