"""Cross-run rules: a check over a whole matrix that needs no expectation at all.

How the upstream bytes are split is invisible to the user of a correct system: runs of one
case x SUT x dialect x latency x seed without faults must end in the same user-visible
outcome (text, code, terminal) under every chunking, and show the same statuses. A run that
differs from the majority (ties: the group of the first chunking in the matrix) is flagged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from streambench.grade.rules import Violation, difference

# Rows that should agree share these columns (and have no fault).
GROUP_COLUMNS = ("case", "sut", "dialect", "latency", "seed")


def _outcome(row: dict[str, Any]) -> tuple[str, str | None, str]:
    return (row["streamed_text"], row.get("final_code"), row["terminal"])


def _how_it_differs(seen: tuple[str, str | None, str], usual: tuple[str, str | None, str]) -> str:
    if seen[2] != usual[2]:
        return f"ends in {seen[2]}, not {usual[2]}"
    if seen[0] != usual[0]:
        return f"shows other text {difference(seen[0], usual[0])}"
    return f"ends with other code {difference(seen[1] or '', usual[1] or '')}"


def _majority_flags(
    rows: Sequence[dict[str, Any]], members: list[int], key: Any, describe: Any, slug: str
) -> dict[int, Violation]:
    """Flag the members whose ``key`` differs from the most common one (ties: first seen)."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for index in members:
        groups[key(rows[index])].append(index)
    if len(groups) < 2:
        return {}
    usual, agreeing = max(groups.items(), key=lambda item: len(item[1]))
    names = ", ".join(str(rows[i]["chunking"]) for i in agreeing)
    found: dict[int, Violation] = {}
    for value, indices in groups.items():
        if value == usual:
            continue
        for index in indices:
            message = (
                f"under {rows[index]['chunking']} it {describe(value, usual)}"
                f" (as under {names}: {len(agreeing)} of {len(members)} chunkings agree)"
            )
            found[index] = Violation(slug, message, None)
    return found


def cross_run_violations(
    rows: Sequence[dict[str, Any]], selected: dict[str, dict[str, Any]]
) -> dict[int, list[Violation]]:
    """``split-variance`` and ``status-variance`` over result rows: row index -> violations."""
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        if not row.get("fault"):
            groups[tuple(row[c] for c in GROUP_COLUMNS)].append(index)
    found: dict[int, list[Violation]] = defaultdict(list)
    for members in groups.values():
        if "split-variance" in selected:
            flags = _majority_flags(rows, members, _outcome, _how_it_differs, "split-variance")
            for index, violation in flags.items():
                found[index].append(violation)
        if "status-variance" not in selected:
            continue
        same_outcome: dict[Any, list[int]] = defaultdict(list)
        for index in members:  # runs that ended differently may show other statuses
            same_outcome[_outcome(rows[index])].append(index)
        for agreeing in same_outcome.values():
            flags = _majority_flags(
                rows,
                agreeing,
                lambda row: tuple(row.get("statuses") or ()),
                lambda seen, usual: f"shows statuses {list(seen)}, not {list(usual)}",
                "status-variance",
            )
            for index, violation in flags.items():
                found[index].append(violation)
    return dict(found)
