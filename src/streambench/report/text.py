"""How a run reads for people: what was on screen at a time, on one line, as the user saw it;
a run's name. Shared by the terminal, summary.md, junit.xml and report.html."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

EXCERPT_CHARS = 40


@lru_cache(maxsize=16)
def _text_events(timeline: str) -> tuple[tuple[float, str], ...]:
    """(t_ms, text) of the client's text events; cached: a run's violations share one parse."""
    return tuple(
        (e["t_ms"], e["text"])
        for e in json.loads(timeline)
        if e["source"] == "client" and e["kind"] == "text"
    )


def shown_text(row: Mapping[str, Any], at_ms: float | None) -> str:
    """The text the user had on screen at ``at_ms`` (all of it when None or untimed)."""
    timeline, at_ms = row.get("timeline_json"), given(at_ms)
    if at_ms is None or not isinstance(timeline, str):
        return str(row.get("streamed_text") or "")
    return "".join(text for t_ms, text in _text_events(timeline) if t_ms <= at_ms)


def as_seen(text: str) -> str:
    """Text on one line as a reader saw it: line breaks as ⏎, tabs as ⇥, escapes left as
    the literal characters they were on screen (a shown ``\\n`` stays ``\\n``)."""
    return text.replace("\r\n", "⏎").replace("\n", "⏎").replace("\r", "⏎").replace("\t", "⇥")


def clip(text: str, width: int = EXCERPT_CHARS) -> str:
    """The last ``width`` characters of ``text`` as seen (:func:`as_seen`), "…" when cut."""
    text = as_seen(text)
    return text if len(text) <= width else "…" + text[-width:]


def excerpt(row: Mapping[str, Any], at_ms: float | None, width: int = EXCERPT_CHARS) -> str:
    """The last ``width`` characters on screen at ``at_ms``, on one line ("" when none)."""
    return clip(shown_text(row, at_ms), width)


def given(value: Any) -> Any:
    """``value``, or None when it is missing (None or NaN, as a results file reads back)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def variant(row: Mapping[str, Any]) -> str:
    """A run for people: case · sut · chunking · fault (latency, dialect, seed when not the
    defaults)."""
    parts = [row["case"], row["sut"], row["chunking"], row["fault"] or "no fault"]
    parts += [
        str(row[c]) for c in ("dialect", "latency") if row[c] not in ("streambench", "default")
    ]
    parts += [f"seed {row['seed']}"] if row["seed"] else []
    return " · ".join(str(p) for p in parts)
