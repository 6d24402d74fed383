"""Speed never changes a verdict: a fixed matrix's rows match digests stored from the code
before the speed work (virtual-time loop, caches, delivery without timers).

Each stored row is the run's id plus one short digest per column (in the stored column
order), so a failure names the run and the column that moved. A deliberate change of results
regenerates the file (``STREAMBENCH_UPDATE_ROWS=1 python -m pytest`` on this file).
Columns added later are not compared (they have no stored digest).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
from tests.conftest import REPO_ROOT

from streambench.runner.matrix import DEFAULT_CHUNKINGS, ID_COLUMNS, Matrix, run_matrix

EXPECTED = Path(__file__).parent / "data" / "matrix_rows.json"
FIXTURES = str(REPO_ROOT / "fixtures")
# The fixtures x six chunkings (the default matrix's first seed, no fault), a paced random
# split over seeds, a fault.
MATRICES = (
    Matrix(cases=[FIXTURES], chunkings=list(DEFAULT_CHUNKINGS)),
    Matrix(
        cases=[FIXTURES],
        chunkings=["random:min=1,max=64"],
        latencies=["tokens:rate=50"],
        seeds=[1, 2],
    ),
    Matrix(
        cases=[FIXTURES],
        chunkings=["deltas:1"],
        faults=[("http:529@start",)],
    ),
)


def _digest(value: Any) -> str:
    """A short digest of one cell; NaN/None alike, floats by repr (exact)."""
    if isinstance(value, float) and value != value:
        value = None
    text = json.dumps(value, sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _rows(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    for record in records:  # where the checkout lies is not part of a verdict
        record["case_path"] = os.path.relpath(record["case_path"], REPO_ROOT)
    return {
        "|".join(str(r[c]) for c in ID_COLUMNS): {c: _digest(v) for c, v in r.items()}
        for r in records
    }


def _current() -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    for matrix in MATRICES:
        rows.update(_rows(run_matrix(matrix)))
    return rows


def test_rows_match_the_stored_digests() -> None:
    current = _current()
    if os.environ.get("STREAMBENCH_UPDATE_ROWS") == "1":
        columns = list(next(iter(current.values())))
        stored = {r: " ".join(cells[c] for c in columns) for r, cells in sorted(current.items())}
        EXPECTED.parent.mkdir(exist_ok=True)
        EXPECTED.write_text(json.dumps({"columns": columns, "rows": stored}, indent=0) + "\n")
    expected = json.loads(EXPECTED.read_text())
    assert sorted(current) == sorted(expected["rows"]), "the matrix's runs changed"
    moved = [
        f"{run}: {column}"
        for run, digests in expected["rows"].items()
        for column, digest in zip(expected["columns"], digests.split(), strict=True)
        if current[run].get(column) != digest
    ]
    assert not moved, f"{len(moved)} cells changed:\n" + "\n".join(moved[:20])
