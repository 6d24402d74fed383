"""report.html read back from the rendered DOM in headless Chromium: the summary counts are the
results', failing runs come first, and each run's player shows what that run's client saw."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import chromium_page, needs_chromium

from streambench.report.files import load_results, write_reports
from streambench.runner.matrix import Matrix, run_matrix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAIVE = "tests.suts.naive:app"
CASES = ["chat-hello", "job-unicode-escaped", "workflow-new"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    """Reference and naive SUT x 3 cases x 2 chunkings x (no fault, a disconnect): 24 runs."""
    matrix = Matrix(
        cases=[str(FIXTURES / c) for c in CASES],
        suts=["reference", NAIVE],
        chunkings=["events", "deltas:1"],
        faults=[(), ("disconnect@event=8",)],
    )
    out = tmp_path_factory.mktemp("report")
    write_reports(run_matrix(matrix), out)
    return load_results(out), out / "report.html"


def test_the_page_is_one_small_offline_file(report: tuple[pd.DataFrame, Path]) -> None:
    _, page = report
    text = page.read_text()
    # nothing to fetch: no external script, stylesheet or image
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text) is None
    assert "<script src" not in text and "<link" not in text
    assert page.stat().st_size < 400_000


def _find(frame: pd.DataFrame, sut: str, case: str, chunking: str, fault: str) -> int:
    hits = frame.index[
        (frame["sut"] == sut)
        & (frame["case"] == case)
        & (frame["chunking"] == chunking)
        & (frame["fault"] == fault)
    ]
    return int(hits[0])


def _play_to_end(page, index: int) -> dict[str, str]:
    """Open run ``index``, move its slider to the end; what its panels show."""
    card = page.locator(f"#run-{index}")
    card.locator("summary").click()
    card.locator("input.t").evaluate(
        "e => { e.value = e.max; e.dispatchEvent(new Event('input')); }"
    )
    return {
        name: card.locator(f".panel.{name} pre").first.text_content() or ""
        for name in ("status", "text", "code", "ending")
    }


@pytest.mark.chromium
@needs_chromium
def test_summary_counts_match_the_results(report: tuple[pd.DataFrame, Path]) -> None:
    frame, path = report
    flagged = frame[frame["n_violations"] > 0]
    runs_by_rule: dict[str, set[int]] = {}
    for index, row in frame.iterrows():
        for v in row["violations"]:
            runs_by_rule.setdefault(v["rule"], set()).add(int(index))
    assert flagged.shape[0] and len(flagged) < len(frame)  # both kinds of run are on the page
    with chromium_page(path) as (page, errors):
        counts = {k: int(page.inner_text(f"#n-{k}")) for k in ("runs", "clean", "flagged")}
        violations = int(page.inner_text("#n-violations"))
        suts = page.locator("#by-sut tr[data-sut]").evaluate_all(
            "rows => rows.map(r => [r.dataset.sut, +r.dataset.runs, +r.dataset.flagged,"
            " +r.cells[2].textContent, +r.cells[4].textContent])"
        )
        rules = page.locator("#by-rule tr[data-rule]").evaluate_all(
            "rows => rows.map(r => [r.dataset.rule, +r.cells[2].textContent,"
            " [...r.querySelectorAll('a[href^=\"#run-\"]')].map(a => +a.hash.slice(5))])"
        )
        order = page.locator("details.run").evaluate_all("cards => cards.map(c => +c.dataset.run)")
    assert errors == []
    assert counts == {
        "runs": len(frame),
        "clean": len(frame) - len(flagged),
        "flagged": len(flagged),
    }
    assert violations == frame["n_violations"].sum()
    for sut, runs, flagged_runs, clean, total in suts:
        mine = frame[frame["sut"] == sut]
        assert runs == len(mine) and flagged_runs == (mine["n_violations"] > 0).sum()
        assert clean == runs - flagged_runs and total == mine["n_violations"].sum()
    assert sorted(s[0] for s in suts) == sorted(set(frame["sut"]))
    assert {r[0]: (r[1], set(r[2])) for r in rules} == {
        rule: (len(runs), runs) for rule, runs in runs_by_rule.items()
    }
    # Every run once; the failing ones first.
    assert sorted(order) == list(range(len(frame)))
    assert set(order[: len(flagged)]) == set(flagged.index)


@pytest.mark.chromium
@needs_chromium
def test_the_player_at_its_end_shows_what_the_run_streamed(
    report: tuple[pd.DataFrame, Path],
) -> None:
    frame, path = report
    leaky = _find(frame, NAIVE, "job-unicode-escaped", "deltas:1", "")
    clean = _find(frame, "reference", "job-unicode-escaped", "events", "")
    cut = _find(frame, NAIVE, "chat-hello", "events", "disconnect@event=8")
    with chromium_page(path) as (page, errors):
        card = page.locator(f"#run-{leaky}")
        card.locator("summary").click()
        at_start = card.locator(".panel.text pre").text_content()
        leaky_end = _play_to_end(page, leaky)
        marks = card.locator("line.violation").count()
        diff_marks = card.locator(".diff del, .diff ins").count()
        clean_end = _play_to_end(page, clean)
        same = page.locator(f"#run-{clean} .diff .same").count()
        _play_to_end(page, cut)
        faults = page.locator(f"#run-{cut} line.fault").count()
        # 10x playback moves the slider on its own
        page.locator(f"#run-{clean} input.t").evaluate(
            "e => { e.value = 0; e.dispatchEvent(new Event('input')); }"
        )
        page.locator(f"#run-{clean} button.play10").click()
        page.wait_for_function(
            f"() => +document.querySelector('#run-{clean} input.t').value > 0", timeout=5000
        )
    assert errors == []
    assert at_start == ""
    assert leaky_end["text"] == frame.loc[leaky, "streamed_text"]
    assert "\\u0" in leaky_end["text"]  # the escape the user saw, as they saw it
    timed = [v for v in frame.loc[leaky, "violations"] if v["at_ms"] is not None]
    assert marks == len(timed) > 0
    assert diff_marks > 0
    assert clean_end["text"] == frame.loc[clean, "streamed_text"]
    assert clean_end["code"] == frame.loc[clean, "final_code"]
    assert clean_end["ending"].startswith("done at ")
    assert same == 1
    assert faults == 1


def test_the_timeline_carries_what_the_player_needs(report: tuple[pd.DataFrame, Path]) -> None:
    frame, _ = report
    row = frame.loc[_find(frame, "reference", "workflow-new", "deltas:1", "disconnect@event=8")]
    timeline = json.loads(row["timeline_json"])
    kinds = Counter((e["source"], e["kind"]) for e in timeline)
    assert kinds[("upstream 1", "fault")] == 1
    client_text = "".join(
        e["text"] for e in timeline if e["source"] == "client" and e["kind"] == "text"
    )
    assert client_text == row["streamed_text"]


@needs_chromium
def test_a_failing_run_links_its_shrunk_case(tmp_path: Path) -> None:
    case = str(FIXTURES / "job-unicode-escaped")
    frame = run_matrix(Matrix(cases=[case], suts=["reference", NAIVE], chunkings=["deltas:1"]))
    failing = int(frame.index[frame["n_violations"] > 0][0])
    assert frame.loc[failing, "sut"] == NAIVE
    frame["shrunk_case"] = None
    frame.loc[failing, "shrunk_case"] = "shrunk/job-unicode-escaped-escape-leak"
    write_reports(frame, tmp_path)
    with chromium_page(tmp_path / "report.html") as (page, errors):
        card = page.locator(f"#run-{failing}")
        card.locator("summary").click()
        links = card.locator("a.shrunk")
        assert links.count() == 1
        assert links.get_attribute("href") == "shrunk/job-unicode-escaped-escape-leak"
        assert page.locator("a.shrunk").count() == 1  # only the run that has one
        assert errors == []
