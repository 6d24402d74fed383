"""Resolve the model's code edits against the user's code, in order, best effort.

An edit is ``{"action": "replace", "old_code": ..., "new_code": ...}`` (``old_code`` must occur
exactly once in the code as it stands after the previous edits) or ``{"action": "rewrite",
"new_code": ...}`` (replaces everything). An edit that cannot apply is skipped with a warning,
so one bad edit never blocks the others or the stream (apollo #407's ``_resolve_code_edits``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ResolvedCode:
    code: str
    patches_applied: int
    warnings: list[str] = field(default_factory=list)


def resolve_code_edits(code: str, edits: Any) -> ResolvedCode:
    if not isinstance(edits, list):
        return ResolvedCode(code, 0, [f"code_edits is not a list: {type(edits).__name__}"])
    applied = 0
    warnings: list[str] = []
    for number, edit in enumerate(edits, start=1):
        problem = _problem(code, edit)
        if problem is not None:
            warnings.append(f"edit {number}: {problem}; skipped")
            continue
        if edit["action"] == "rewrite":
            code = edit["new_code"]
        else:
            code = code.replace(edit["old_code"], edit["new_code"], 1)
        applied += 1
    return ResolvedCode(code, applied, warnings)


def _problem(code: str, edit: Any) -> str | None:
    """Why ``edit`` cannot apply to ``code``, or None when it can."""
    if not isinstance(edit, dict):
        return "not an object"
    action = edit.get("action")
    if action not in ("replace", "rewrite"):
        return f"unknown action {action!r}"
    if not isinstance(edit.get("new_code"), str):
        return "new_code is missing or not a string"
    if action == "rewrite":
        return None
    old = edit.get("old_code")
    if not isinstance(old, str) or not old:
        return "old_code is missing or empty"
    count = code.count(old)
    if count != 1:
        return f"old_code matches {count} times (must match exactly once)"
    return None
