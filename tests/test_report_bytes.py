"""The report files are the bytes they were when pandas wrote them (report/files.py writes
them without pandas since issue 18).

results.csv and results.parquet are written both ways here, pandas' way being the code that
wrote them before (``DataFrame.to_csv`` and ``Table.from_pandas`` per chunk of rows), and
compared byte for byte: on real rows of SUTs that pass and fail, and on rows with every kind
of awkward cell (gaps in int, bool and text columns, NaN, inf, quotes and line breaks, columns
no Row has), with chunks small enough that one column gets a different dtype per chunk.
summary.md, junit.xml and report.html (its inlined script and style aside) match digests
stored from the code before the change; a deliberate change of them regenerates the file::

    STREAMBENCH_UPDATE_REPORTS=1 python -m pytest tests/test_report_bytes.py
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.conftest import REPO_ROOT

from streambench.report import files
from streambench.report.files import ResultsSpool, write_reports, write_streamed
from streambench.runner.matrix import Matrix, iter_matrix
from streambench.runner.row import column_types

FIXTURES = REPO_ROOT / "fixtures"
EXPECTED = Path(__file__).parent / "data" / "report_digests.json"
# Passing and failing runs, SUT errors and HTTP statuses, code and chat cases, a fault.
MATRIX = Matrix(
    cases=[
        str(FIXTURES / c)
        for c in ("chat-hello", "chat-unicode-json-looking", "job-basic-replace", "job-tabs-crlf")
    ],
    suts=["reference", "tests.suts.naive:app"],
    chunkings=["events", "deltas:1"],
    faults=[(), ("http:529@start",)],
)


def _pandas_way(
    chunks: Sequence[Sequence[dict[str, Any]]], folder: Path, frame: pd.DataFrame | None = None
) -> None:
    """results.csv and results.parquet as the code before wrote them: per chunk a DataFrame
    (slices of ``frame`` when given, so its dtypes; else a frame per chunk, as the spool made
    them), ``to_csv`` with lists of violations and warnings as JSON, and ``Table.from_pandas``
    with Row's schema (inferred by pandas for other columns)."""
    every = pd.DataFrame([row for chunk in chunks for row in chunk]) if frame is None else frame
    sample = every if frame is not None or not chunks else pd.DataFrame([chunks[0][0]])
    known = column_types()
    schema = pa.schema(
        pa.field(name, files._arrow_type(known[name][0]))
        if name in known
        else pa.Schema.from_pandas(sample[[name]], preserve_index=False).field(0)
        for name in sample.columns
    )
    start = 0
    parts = []
    for chunk in chunks:
        part = every.iloc[start : start + len(chunk)] if frame is not None else None
        parts.append(pd.DataFrame(chunk) if part is None else part)
        start += len(chunk)
    writer = None
    with (folder / "results.csv").open("w", encoding="utf-8", newline="") as csv_file:
        for number, part in enumerate(parts):
            table = pa.Table.from_pandas(part, schema=schema, preserve_index=False)
            writer = writer or pq.ParquetWriter(folder / "results.parquet", table.schema)
            writer.write_table(table)
            flat = part.copy()
            for column in ("violations", "warnings"):
                if column in flat:
                    flat[column] = flat[column].map(json.dumps)
            flat.to_csv(csv_file, index=False, header=number == 0)
    if writer is None:
        pd.DataFrame().to_parquet(folder / "results.parquet", index=False)
    else:
        writer.close()


def _assert_same(ours: Path, theirs: Path) -> None:
    for name in ("results.csv", "results.parquet"):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


def _spooled(rows: Sequence[dict[str, Any]], out: Path) -> list[list[dict[str, Any]]]:
    """Write ``rows`` through the results spool; returns its chunks as they were written."""
    spool = ResultsSpool(out)
    for row in rows:
        spool.add(row)  # type: ignore[arg-type]
    spool.add_cross_run({})
    chunks = [list(chunk) for chunk in spool.chunks()]
    spool.write_reports()
    return chunks  # type: ignore[return-value]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return list(iter_matrix(MATRIX))  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_rows", [256, 7])
def test_csv_and_parquet_of_real_runs_are_pandas_bytes(
    rows: list[dict[str, Any]],
    chunk_rows: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(files, "CHUNK_ROWS", chunk_rows)
    chunks = _spooled(rows, tmp_path / "ours")
    assert len(chunks) == -(-len(rows) // chunk_rows)
    (tmp_path / "pandas").mkdir()
    _pandas_way(chunks, tmp_path / "pandas")
    _assert_same(tmp_path / "ours", tmp_path / "pandas")
    # a frame of the same rows: its dtypes (every chunk's), not each chunk's own
    frame = pd.DataFrame([row for chunk in chunks for row in chunk])
    write_reports(frame, tmp_path / "frame")
    (tmp_path / "frame-pandas").mkdir()
    _pandas_way(chunks, tmp_path / "frame-pandas", frame)
    _assert_same(tmp_path / "frame", tmp_path / "frame-pandas")


def test_no_runs_are_pandas_bytes(rows: list[dict[str, Any]], tmp_path: Path) -> None:
    _spooled([], tmp_path / "ours")
    (tmp_path / "pandas").mkdir()
    _pandas_way([], tmp_path / "pandas")
    _assert_same(tmp_path / "ours", tmp_path / "pandas")
    # a frame with its columns but no row: the header and the schema still
    empty = pd.DataFrame(rows).head(0)
    write_reports(empty, tmp_path / "frame")
    (tmp_path / "frame-pandas").mkdir()
    _pandas_way([[]], tmp_path / "frame-pandas", empty)
    _assert_same(tmp_path / "frame", tmp_path / "frame-pandas")


# Awkward values for a column of each kind (None and NaN are pandas' missing values).
TEXT = st.text(alphabet=st.sampled_from(["a", ",", '"', "\n", "\r", " ", "é", "'", "|"]))
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.1 + 0.2, 1e16, 1e-7, -0.0, 200.0, 5e-324]),
)
CELLS = {
    "status_code": st.one_of(st.none(), st.sampled_from([200, 529, 0])),
    "answer_call": st.one_of(st.none(), st.integers(1, 3)),
    "code_exact": st.one_of(st.none(), st.booleans()),
    "sut_error": st.one_of(st.none(), TEXT),
    "final_text": st.one_of(st.none(), TEXT),
    "ttft_ms": st.one_of(st.none(), FLOATS, st.integers(-5, 5)),
    "code_similarity": st.one_of(st.none(), FLOATS),
    "warnings": st.lists(TEXT, max_size=2),
    "statuses": st.lists(TEXT, max_size=2),
    # columns no Row has: their type is inferred from the first row (given below)
    "extra_text": st.one_of(st.none(), TEXT),
    "extra_number": st.one_of(st.none(), st.integers(-3, 3), FLOATS),
    "extra_flag": st.one_of(st.none(), st.booleans()),
}
FIRST_EXTRAS = {"extra_text": "a", "extra_number": 1.5, "extra_flag": True}
VIOLATION = st.fixed_dictionaries(
    {"rule": st.sampled_from(["wrong-text", "json-leak"]), "message": TEXT, "at_ms": FLOATS}
)


@settings(max_examples=40, deadline=None)
@given(
    cells=st.lists(st.fixed_dictionaries(CELLS), min_size=1, max_size=9),
    violations=st.lists(st.lists(VIOLATION, max_size=2), min_size=9, max_size=9),
    chunk_rows=st.integers(1, 4),
)
def test_csv_and_parquet_of_awkward_cells_are_pandas_bytes(
    rows: list[dict[str, Any]],
    cells: list[dict[str, Any]],
    violations: list[list[dict[str, Any]]],
    chunk_rows: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base = next(r for r in rows if r["sut"] == "reference" and not r["fault"])
    cells[0].update(FIRST_EXTRAS)
    awkward = [
        {**base, "seed": seed, **cell, "violations": found, "n_violations": len(found)}
        for seed, (cell, found) in enumerate(zip(cells, violations, strict=False))
    ]
    folder = tmp_path_factory.mktemp("awkward")
    old = files.CHUNK_ROWS
    files.CHUNK_ROWS = chunk_rows
    try:
        chunks = _spooled(awkward, folder / "ours")
    finally:
        files.CHUNK_ROWS = old
    (folder / "pandas").mkdir()
    _pandas_way(chunks, folder / "pandas")
    _assert_same(folder / "ours", folder / "pandas")


def test_the_dtypes_are_pandas_own() -> None:
    columns = [
        [1, 2],
        [1, None],
        [1, 2.5],
        [1.5, math.nan],
        [True, False],
        [True, None],
        [True, 1],
        ["a", None],
        ["a", math.nan],
        [None, None],
        [math.nan, None],
        ["a", 1],
        [[1], None],
        [{"a": 1}],
        [1.5, True],
    ]
    for values in columns:
        frame = pd.DataFrame([{"x": v} for v in values])
        assert files.pandas_dtype(values) == str(frame["x"].dtype), values


def _digest(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    if path.name == "report.html":  # the shipped script and style are files of their own
        text = re.sub(r"<style>.*?</style>", "<style/>", text, flags=re.S)
        text = re.sub(r"<script>.*?</script>", "<script/>", text, flags=re.S)
    return hashlib.sha256(text.encode()).hexdigest()


def test_summary_junit_and_page_match_the_stored_digests(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_streamed(iter_matrix(MATRIX), out, MATRIX.profile).write_reports()
    current = {n: _digest(out / n) for n in ("summary.md", "junit.xml", "report.html")}
    if os.environ.get("STREAMBENCH_UPDATE_REPORTS") == "1":
        EXPECTED.write_text(json.dumps(current, indent=1) + "\n")
    assert current == json.loads(EXPECTED.read_text())
