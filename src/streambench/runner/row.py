"""The result row: every column of one run, with its type and what it means, defined once.

A run's stages each fill their part: the run's id (:class:`RunId`), the grade/ stages'
:class:`~streambench.grade.metrics.Metrics` and :class:`~streambench.grade.quality.CodeQuality`,
what the user saw and what was expected (:class:`RunOutcome`), the player's timeline. The id and
metric column lists, the report files' schema and the column reference in docs/evaluation.md
(:func:`columns_markdown`, checked by tests/test_row.py) all come from :class:`Row`.
"""

from __future__ import annotations

import functools
import typing
from typing import Annotated, Any, TypedDict

from streambench.grade.metrics import Metrics
from streambench.grade.quality import CodeQuality
from streambench.grade.rules import ViolationRecord


class RunId(TypedDict):
    """Which run this is: one value of each matrix axis (the rows' sort order)."""

    case: Annotated[str, "the case's name"]
    sut: Annotated[str, "the system under test's spec"]
    dialect: Annotated[str, "how the SUT's SSE was read (a dialect name or file)"]
    chunking: Annotated[str, "how the upstream bytes were split"]
    latency: Annotated[str, "when the upstream bytes came"]
    fault: Annotated[str, "the faults injected ('a;b'; chaos cells: per call, ' | ' apart)"]
    seed: Annotated[int, "the replay seed"]


class Source(TypedDict):
    """What the run read."""

    dialect_used: Annotated[str, "the dialect that read the stream (auto's pick)"]
    case_path: Annotated[str, "the case file the run read (what shrink re-runs)"]


class RunOutcome(TypedDict):
    """What the user saw, what the SUT and its upstream calls did, and what was expected."""

    terminal: Annotated[str, "how the stream ended for the user: done, error or none"]
    provider: Annotated[str | None, "the provider the terminal event names"]
    error_message: Annotated[str | None, "the error event's message"]
    status_code: Annotated[int, "the SUT's HTTP status"]
    sut_error: Annotated[str | None, "why the SUT call failed (an exception, a timeout)"]
    upstream_calls: Annotated[int, "upstream requests the SUT made"]
    upstream_requests: Annotated[str, "JSON: each upstream request and the recording it got"]
    answer_call: Annotated[int | None, "which upstream call carried the answer, 1-based"]
    violations: Annotated[list[ViolationRecord], "every rule violation (rule, message, at_ms)"]
    n_violations: Annotated[int, "how many violations"]
    unknown_events: Annotated[int, "SSE events the dialect did not understand"]
    unknown_event_names: Annotated[str, "JSON: those events' names and counts"]
    streamed_text: Annotated[str, "the text the user saw stream"]
    final_text: Annotated[str | None, "the final message's text"]
    expected_terminal: Annotated[str, "done, error, or done/error when either is correct"]
    expected_text: Annotated[str | None, "the text a correct system shows"]
    expected_cause: Annotated[str, "why that is expected, in one line"]
    not_checked: Annotated[list[str], "rules that could not be checked on this run"]
    statuses: Annotated[list[str], "every status line shown"]


class Timeline(TypedDict):
    """The report's player."""

    timeline_json: Annotated[str, "JSON: upstream content, the fault and client events in time"]


class Added(TypedDict, total=False):
    """Columns only some runs get."""

    run_order: Annotated[int, "the order runs ran in (experiments, in_order=)"]
    shrunk_case: Annotated[str | None, "the failing run's shrunk case (run --shrink)"]


class Row(RunId, Source, Metrics, RunOutcome, CodeQuality, Timeline, Added):
    """One run's result row: every column, in the row's order."""


ID_COLUMNS = tuple(RunId.__annotations__)


@functools.cache
def column_types() -> dict[str, tuple[Any, str]]:
    """Every column of :class:`Row`: its type and its one-line meaning."""
    hints = typing.get_type_hints(Row, include_extras=True)
    return {name: typing.get_args(hint) for name, hint in hints.items()}


def _type_name(kind: object) -> str:
    return str(kind).replace("typing.", "").replace("streambench.grade.rules.", "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def columns_markdown() -> str:
    """The column reference of docs/evaluation.md: a markdown table generated from Row."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    for name, (kind, meaning) in column_types().items():
        shown = kind.__name__ if isinstance(kind, type) else _type_name(kind)
        lines.append(f"| `{name}` | {_cell(shown)} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"
