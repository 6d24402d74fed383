"""The result row is defined once (runner/row.py): runs produce exactly its columns, with
values of its types, and docs/evaluation.md's column table is generated from it."""

from __future__ import annotations

import math
import re
import types
import typing
from pathlib import Path

from tests.conftest import REPO_ROOT

from streambench.grade.metrics import METRIC_COLUMNS
from streambench.runner.matrix import RunSpec, run_one
from streambench.runner.row import ID_COLUMNS, Row, column_types, columns_markdown

DOCS = REPO_ROOT / "docs" / "evaluation.md"


def _fits(value: object, kind: object) -> bool:
    """Whether ``value`` is of the annotated type (NaN counts as a missing float)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, k) for k in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(kind)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if typing.is_typeddict(kind):
        hints = typing.get_type_hints(kind)
        return isinstance(value, dict) and set(value) == set(hints)
    if kind is float:
        return isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool))
    return isinstance(value, kind)  # type: ignore[arg-type]


def test_a_run_has_every_required_column_with_its_type() -> None:
    for case in ("chat-hello", "job-unicode-escaped"):
        spec = RunSpec(str(REPO_ROOT / "fixtures" / case), faults=("http:529@start",))
        row = run_one(spec)
        required = Row.__required_keys__
        assert list(row) == [c for c in column_types() if c in required]
        wrong = {
            name: row[name]  # type: ignore[literal-required]
            for name, (kind, _) in column_types().items()
            if name in row and not _fits(row[name], kind)  # type: ignore[literal-required]
        }
        assert wrong == {}, wrong
    assert math.isnan(row["ttfs_ms"]) or row["ttfs_ms"] >= 0


def test_column_lists_come_from_the_row() -> None:
    names = list(column_types())
    assert names[: len(ID_COLUMNS)] == list(ID_COLUMNS)
    assert set(METRIC_COLUMNS) <= set(names)
    assert all(meaning and "\n" not in meaning for _, meaning in column_types().values())


def test_the_docs_column_table_is_generated_from_the_row() -> None:
    text = Path(DOCS).read_text(encoding="utf-8")
    found = re.search(r"<!-- columns: generated -->\n(.*?)<!-- /columns -->", text, re.S)
    assert found, "docs/evaluation.md lost its generated column table"
    assert found.group(1) == columns_markdown(), "paste columns_markdown() between the markers"
