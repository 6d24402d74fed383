"""Rows stream to disk as runs finish (report/files.py ResultsSpool): the parent keeps no row,
an interrupted matrix leaves its finished runs readable, and the reports written from the
spool are those of the same rows held in memory."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from tests.conftest import REPO_ROOT

from streambench.report import files
from streambench.report.files import (
    REPORT_FILES,
    SPOOL_NAME,
    load_results,
    write_reports,
    write_streamed,
)
from streambench.runner.matrix import Matrix, iter_matrix, run_matrix
from streambench.runner.row import Row

FIXTURES = str(REPO_ROOT / "fixtures")
# Runs without faults (cross-run rules compare them) and with one (they are left out).
MATRIX = Matrix(
    cases=[FIXTURES], chunkings=["events", "deltas:1"], faults=[(), ("http:529@start",)]
)


def test_reports_from_the_spool_equal_the_reports_of_the_frame(tmp_path: Path) -> None:
    write_reports(run_matrix(MATRIX), tmp_path / "frame")
    spool = write_streamed(iter_matrix(MATRIX), tmp_path / "streamed", MATRIX.profile)
    written = spool.write_reports()
    for name in ("summary.md", "junit.xml", "report.html", "results.csv"):
        assert (tmp_path / "frame" / name).read_bytes() == (
            tmp_path / "streamed" / name
        ).read_bytes(), name
    frame, streamed = load_results(tmp_path / "frame"), load_results(tmp_path / "streamed")
    pd.testing.assert_frame_equal(frame, streamed)
    assert sorted(p.name for p in (tmp_path / "streamed").iterdir()) == sorted(REPORT_FILES)
    assert written.n_violations == int(frame["n_violations"].sum())
    assert "timeline_json" not in written.overview  # the overview holds no texts


def _interrupted(rows: Iterator[Row], after: int) -> Iterator[Row]:
    for number, row in enumerate(rows):
        if number == after:
            raise KeyboardInterrupt  # Ctrl-C while the next run is under way
        yield row


def test_an_interrupted_matrix_leaves_its_finished_runs_readable(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    with pytest.raises(KeyboardInterrupt):
        write_streamed(_interrupted(iter_matrix(MATRIX), 3), out)
    spool = out / SPOOL_NAME
    with spool.open("ab") as handle:  # a kill in the middle of writing a fourth row
        handle.write(b'{"case": "half-writ')
    finished = load_results(out)
    assert len(finished) == 3 and set(finished["chunking"]) <= {"events", "deltas:1"}
    assert all(isinstance(v, list) for v in finished["violations"])
    assert len(load_results(spool)) == 3
    # the next complete run replaces the partial file with the reports
    write_streamed(iter_matrix(MATRIX), out).write_reports()
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)


def test_the_parent_keeps_no_row_while_runs_stream(tmp_path: Path) -> None:
    """A few hundred runs: after the first ones, what the spool allocates grows by its small
    per-run record (sort key, place in the file, interned cross-run keys), and the parent as a
    whole by far less than a held row (~50 KB: timeline, texts, requests)."""
    matrix = Matrix(cases=[FIXTURES], chunkings=["events"], seeds=list(range(10)))
    total = len(matrix.specs())
    assert total >= 200
    snapshots: list[tracemalloc.Snapshot] = []

    def measured(rows: Iterator[Row]) -> Iterator[Row]:
        for number, row in enumerate(rows):
            if number in (40, total - 1):
                snapshots.append(tracemalloc.take_snapshot())
            yield row

    tracemalloc.start()
    try:
        spool = write_streamed(measured(iter_matrix(matrix)), tmp_path / "out")
    finally:
        tracemalloc.stop()
    assert len(spool) == total
    grown = snapshots[1].compare_to(snapshots[0], "filename")
    runs = total - 41
    spool_per_run = sum(d.size_diff for d in grown if d.traceback[0].filename == files.__file__)
    assert spool_per_run / runs < 600, f"the spool keeps {spool_per_run / runs:.0f} B per run"
    parent_per_run = sum(d.size_diff for d in grown) / runs
    assert parent_per_run < 10_000, f"the parent grows {parent_per_run:.0f} B per run"


def test_a_page_of_many_runs_shows_failing_ones_first_up_to_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "MAX_RUNS_SHOWN", 3)
    monkeypatch.setattr(files, "MAX_LISTED_VIOLATIONS", 2)
    matrix = Matrix(cases=[FIXTURES], suts=["tests.suts.naive:app"], chunkings=["events"])
    spool = write_streamed(iter_matrix(matrix), tmp_path / "out")
    written = spool.write_reports()
    runs = len(written.overview)
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert f"Showing 3 of {runs} runs: the failing ones first" in page
    data = json.loads(
        page.split("<script id='data' type='application/json'>")[1].split("</script>")[0]
    )
    assert len(data["runs"]) == 3 and all(run["v"] for run in data["runs"])
    assert f"<b id='n-runs'>{runs}</b>" in page  # the counts are of every run
    summary = (tmp_path / "out" / "summary.md").read_text(encoding="utf-8")
    assert f"{written.n_violations - 2} more violations in results.parquet." in summary
    assert len(load_results(tmp_path / "out")) == runs
