"""Speed never changes a verdict: a fixed matrix's rows match digests stored from the code
before the speed work (virtual-time loop, caches, delivery without timers, the lean in-process
call).

The matrix names its cases, so fixtures added later do not change it: those fixtures under
``events``, ``deltas:1`` and ``bytes:16``, a paced random split over two seeds, a 529 at the
start and a mid-stream disconnect, on the reference and on an app built on the official
anthropic SDK (with its dialect and body template). Each stored row is the run's id plus one
short digest per column (in the stored column order), so a failure names the run and the
column that moved. Every column is deterministic in virtual time (no wall-clock column exists).
A deliberate change of results regenerates the file::

    STREAMBENCH_UPDATE_ROWS=1 python -m pytest tests/test_matrix_rows_unchanged.py

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

from streambench.runner.matrix import ID_COLUMNS, Matrix, run_matrix

EXPECTED = Path(__file__).parent / "data" / "matrix_rows.json"
CASES = [
    str(REPO_ROOT / "fixtures" / name)
    for name in (
        "chat-empty",
        "chat-hello",
        "chat-max-tokens-mid-text",
        "chat-unicode-json-looking",
        "failover-openai-chat",
        "failover-openai-job-echo",
        "job-backslashes-quotes",
        "job-basic-replace",
        "job-compact-ascii",
        "job-compact-json",
        "job-empty-edits",
        "job-extra-member",
        "job-max-tokens-mid-code",
        "job-new-code",
        "job-new-code-brackets",
        "job-plane16-escape",
        "job-replace-ambiguous",
        "job-replace-no-match",
        "job-rewrite",
        "job-sequential-edits",
        "job-tabs-crlf",
        "job-text-ends-with-json",
        "job-text-first",
        "job-unicode-escaped",
        "job-unicode-raw",
        "retry-after-429",
        "workflow-edit-existing",
        "workflow-new",
        "workflow-quotes",
        "workflow-text-first",
    )
]
SUTS = "tests/suts"
SDK_APP = f"tests.suts.sdk_anthropic:app,path=/v1/chat,body={SUTS}/anthropic-body.yaml"
SDK_CASES = [c for c in CASES if Path(c).name.startswith(("chat-", "job-basic", "retry"))]
MID_STREAM = ("disconnect@text=20,call=served,else=skip",)
MATRICES = (
    Matrix(cases=CASES, chunkings=["events", "deltas:1", "bytes:16"]),
    Matrix(
        cases=CASES,
        chunkings=["random:min=1,max=64"],
        latencies=["tokens:rate=50"],
        seeds=[1, 2],
    ),
    Matrix(cases=CASES, chunkings=["deltas:1"], faults=[("http:529@start",), MID_STREAM]),
    Matrix(
        cases=SDK_CASES,
        suts=[SDK_APP],
        dialects=[f"{SUTS}/sdk_anthropic.dialect.yaml"],
        chunkings=["events", "deltas:1", "random:min=1,max=64"],
        faults=[(), MID_STREAM],
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
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)  # the SDK app's module, body template and dialect are repo-relative
    try:
        for matrix in MATRICES:
            rows.update(_rows(run_matrix(matrix)))
    finally:
        os.chdir(cwd)
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
