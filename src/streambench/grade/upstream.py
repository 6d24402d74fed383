"""What the upstream delivered, in time: when the structured part was complete and when each
character of the user-visible text arrived. The yardsticks for changes_lag_ms and text lag.

The model's answer in job_code/workflow modes is a JSON object continued from a prefill the
SUT chose; we try the known prefills and keep the one under which the content parses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from streambench.reference.jsonstream import (
    JsonObjectStream,
    JsonStreamError,
    MemberDone,
    ObjectEnd,
    StringDelta,
)

ContentTimeline = Sequence[tuple[float, str, str]]  # (t_ms, kind, text) of the replay plan

STRUCTURED_KEYS = {"job_code": "code_edits", "workflow": "yaml"}
TEXT_KEYS = {"job_code": "text_answer", "workflow": "text"}
PREFILLS = {
    "job_code": ('{\n  "code_edits": [', '{\n  "text_answer": "', ""),
    "workflow": ('{\n  "yaml": "', '{\n  "text": "', ""),
}


@dataclass
class UpstreamContent:
    """``text_times_ms[i]``: when the i-th user-visible text character arrived upstream."""

    structured_complete_ms: float | None = None
    text_times_ms: list[float] = field(default_factory=list)

    def shifted(self, offset_ms: float) -> UpstreamContent:
        """The same content on the SUT request's clock (the upstream call began at offset_ms)."""
        done = self.structured_complete_ms
        return UpstreamContent(
            None if done is None else done + offset_ms,
            [t + offset_ms for t in self.text_times_ms],
        )


def _text_deltas(timeline: ContentTimeline) -> list[tuple[float, str]]:
    return [(t_ms, text) for t_ms, kind, text in timeline if kind == "text" and text]


def _parse_json_answer(
    deltas: list[tuple[float, str]], prefill: str, mode: str
) -> tuple[UpstreamContent, bool] | None:
    """Content under one prefill guess, and whether the object ended; None if it does not parse."""
    stream = JsonObjectStream()
    content = UpstreamContent()
    ended = False
    try:
        stream.feed(prefill)
        for t_ms, text in deltas:
            for event in stream.feed(text):
                if isinstance(event, MemberDone) and event.key == STRUCTURED_KEYS[mode]:
                    content.structured_complete_ms = t_ms
                elif isinstance(event, StringDelta) and event.key == TEXT_KEYS[mode]:
                    content.text_times_ms.extend([t_ms] * len(event.text))
                elif isinstance(event, ObjectEnd):
                    ended = True
    except JsonStreamError:
        return None
    return content, ended


def analyse_upstream(timeline: ContentTimeline, mode: str) -> UpstreamContent:
    """Times on the upstream call's own clock (0 = the call began)."""
    deltas = _text_deltas(timeline)
    if mode not in STRUCTURED_KEYS:
        return UpstreamContent(None, [t_ms for t_ms, text in deltas for _ in text])
    fallback: UpstreamContent | None = None
    for prefill in PREFILLS[mode]:
        parsed = _parse_json_answer(deltas, prefill, mode)
        if parsed is None:
            continue
        content, ended = parsed
        if ended:
            return content
        fallback = fallback or content
    return fallback or UpstreamContent()
