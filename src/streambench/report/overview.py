"""Every run's overview, column by column and without pandas: what the summaries (terminal,
summary.md), the closing line and report.html's counts read of every run of a matrix.

A 100k-run matrix's overview is held in the parent while the reports are written, so it keeps
what those readers need and no more: the id columns and counts, the metrics as 8-byte floats
(NaN when missing, as in a results frame), each violation as its rule only, and a value that
repeats across runs (ids, rule lists, status codes) stored once.
"""

from __future__ import annotations

from array import array
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from streambench.grade.metrics import METRIC_COLUMNS
from streambench.report.text import given
from streambench.runner.row import ID_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

# What the report pass keeps of each run (besides its violations' rules).
OVERVIEW_COLUMNS = (
    *ID_COLUMNS,
    "dialect_used",
    "terminal",
    "n_violations",
    "not_checked",
    "code_exact",
    "status_code",
    "unknown_event_names",
    *METRIC_COLUMNS,
)
_FLOATS = frozenset(METRIC_COLUMNS)
NAN = float("nan")


def is_frame(rows: object) -> bool:
    """Whether ``rows`` is a results DataFrame (told by its methods: pandas is not imported
    for it; rows may be a frame read back, a list of row mappings, or an :class:`Overview`)."""
    return hasattr(rows, "columns") and hasattr(rows, "to_dict")


def as_records(rows: pd.DataFrame | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """A frame's rows as mappings (one ``to_dict``: a Series per row costs far more), or the
    row mappings as they are, in a list."""
    return rows.to_dict(orient="records") if is_frame(rows) else list(rows)  # type: ignore[union-attr]


class Overview:
    """Runs as columns: ``len()`` is the number of runs, ``overview[name]`` a column's values
    in run order, ``name in overview`` whether it has that column."""

    def __init__(self, columns: dict[str, Sequence[Any]] | None = None, runs: int = 0) -> None:
        self._columns: dict[str, Any] = dict(columns or {})
        self._runs = runs
        self._shared: dict[Any, Any] = {}
        self._rules: dict[tuple[str, ...], tuple[dict[str, str], ...]] = {}

    @classmethod
    def of(cls, runs: Overview | pd.DataFrame | Iterable[Mapping[str, Any]]) -> Overview:
        """``runs`` as an Overview of all their columns: a results frame's, or row mappings'
        (a row without a column has None there); an Overview as it is."""
        if isinstance(runs, Overview):
            return runs
        if is_frame(runs):
            return cls({c: runs[c].tolist() for c in runs.columns}, len(runs))  # type: ignore[union-attr]
        rows = list(runs)
        names = dict.fromkeys(name for row in rows for name in row)
        return cls({c: [row.get(c) for row in rows] for c in names}, len(rows))

    def __len__(self) -> int:
        return self._runs

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __getitem__(self, name: str) -> Sequence[Any]:
        return self._columns[name]

    def get(self, name: str, default: Any = None) -> Any:
        """A column, or ``default`` when there is none."""
        return self._columns.get(name, default)

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append full rows, keeping their :data:`OVERVIEW_COLUMNS` (those the first row has)
        and ``violations`` as the rules only."""
        if not rows:
            return
        shared = self._shared.setdefault
        for name in (*OVERVIEW_COLUMNS, "violations"):
            if name not in rows[0]:
                continue
            if name in _FLOATS:
                column = self._columns.setdefault(name, array("d", [NAN] * self._runs))
                column.extend(NAN if (v := row.get(name)) is None else v for row in rows)
                continue
            column = self._columns.setdefault(name, [None] * self._runs)
            for row in rows:
                value = row.get(name)
                if name == "violations":
                    column.append(self._rules_of(tuple(v["rule"] for v in value)))
                    continue
                if isinstance(value, list):
                    value = tuple(value)
                # floats kept as they are (NaN is no key); an unhashable value (an array read
                # from parquet) too
                if not isinstance(value, float) and isinstance(value, Hashable):
                    value = shared(value, value)
                column.append(value)
        self._runs += len(rows)
        for name, column in self._columns.items():  # a column later rows lack
            column.extend([NAN if name in _FLOATS else None] * (self._runs - len(column)))

    def _rules_of(self, rules: tuple[str, ...]) -> tuple[dict[str, str], ...]:
        """A run's violations as ``{"rule": ...}`` mappings, one tuple per distinct list."""
        found = self._rules.get(rules)
        if found is None:
            found = self._rules[rules] = tuple({"rule": rule} for rule in rules)
        return found

    def where(self, name: str, value: Any) -> Overview:
        """The runs whose column ``name`` is ``value``, in order."""
        keep = [i for i, v in enumerate(self._columns[name]) if v == value]
        return Overview({c: [vs[i] for i in keep] for c, vs in self._columns.items()}, len(keep))


def groups(runs: Overview, by: Sequence[str]) -> dict[tuple[Any, ...], list[int]]:
    """The run positions of each group of the columns ``by``, keys sorted, as a pandas
    groupby makes them (a run with a missing key is in no group)."""
    found: dict[tuple[Any, ...], list[int]] = {}
    for index, key in enumerate(zip(*(runs[c] for c in by), strict=True)):
        if not any(given(k) is None for k in key):
            found.setdefault(key, []).append(index)
    return dict(sorted(found.items()))
