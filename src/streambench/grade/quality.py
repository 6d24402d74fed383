"""Code-edit resolution quality: the provisional code (first changes), the final code and the
code the case expects, compared exactly and by similarity (rapidfuzz's normalised Indel ratio)."""

from __future__ import annotations

from typing import Annotated, TypedDict

from rapidfuzz import fuzz

from streambench.grade.client import ClientState


class CodeQuality(TypedDict):
    """The code columns of a result row."""

    provisional_code: Annotated[str | None, "the code of the first changes event"]
    final_code: Annotated[str | None, "the code on screen at the end"]
    expected_code: Annotated[str | None, "the code the case or its recording expects"]
    code_exact: Annotated[bool | None, "final_code == expected_code (None: no code expected)"]
    code_similarity: Annotated[float | None, "rapidfuzz ratio of final to expected code, 0..100"]
    provisional_exact: Annotated[bool | None, "the first changes were already the expected code"]
    patches_applied: Annotated[int | None, "edits the SUT says it applied"]
    patches_failed: Annotated[int | None, "edits the SUT sent but did not apply"]
    warnings: Annotated[list[str], "the SUT's warnings with the changes"]


def code_quality(state: ClientState, expected_code: str | None) -> CodeQuality:
    changes = state.changes
    provisional = changes[0].code if changes else None
    final = state.final_code
    payload = changes[0].data if changes else {}
    edits = payload.get("code_edits")
    applied = payload.get("patches_applied")
    failed = len(edits) - applied if isinstance(edits, list) and isinstance(applied, int) else None
    warnings = payload.get("warnings") or []
    # a run that ends without code is inexact, not left out of the exact rate
    comparable = expected_code is not None
    return {
        "provisional_code": provisional,
        "final_code": final,
        "expected_code": expected_code,
        "code_exact": final == expected_code if comparable else None,
        "code_similarity": fuzz.ratio(final or "", expected_code) if comparable else None,
        "provisional_exact": provisional == expected_code
        if expected_code is not None and provisional is not None
        else None,
        "patches_applied": applied if isinstance(applied, int) else None,
        "patches_failed": failed,
        "warnings": [str(w) for w in warnings] if isinstance(warnings, list) else [str(warnings)],
    }
