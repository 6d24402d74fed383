"""Metrics of one run, in ms since the request (NaN when the thing never happened)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from streambench.grade.client import ClientState
from streambench.grade.upstream import UpstreamContent

NAN = math.nan
METRIC_COLUMNS = (
    "ttfb_ms",
    "ttfs_ms",
    "ttfc_ms",
    "ttft_ms",
    "total_ms",
    "changes_lag_ms",
    "text_lag_p50_ms",
    "text_lag_p95_ms",
    "chunk_chars_p50",
    "chunk_chars_max",
    "gap_ms_p50",
    "gap_ms_p95",
    "n_text_chunks",
    "useful_ms",
)


def _first(state: ClientState, kind: str) -> float:
    for event in state.timeline:
        if event.kind == kind and (kind != "text" or event.text):
            return event.t_ms
    return NAN


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else NAN


def text_char_times(state: ClientState) -> list[float]:
    """When the client showed each character of the streamed text."""
    return [ev.t_ms for ev in state.timeline if ev.kind == "text" for _ in ev.text or ""]


def compute_metrics(
    body_chunks: Sequence[tuple[float, bytes]],
    state: ClientState,
    upstream: UpstreamContent | None,
) -> dict[str, float]:
    """``body_chunks``: the SUT's response body as (t_ms, bytes); ``upstream``: the content of
    the upstream call that served the answer, already on the request's clock."""
    non_empty = [t for t, data in body_chunks if data]
    ttfc = _first(state, "changes")
    ttft = _first(state, "text")
    text_events = [ev for ev in state.timeline if ev.kind == "text" and ev.text]
    sizes = [len(ev.text or "") for ev in text_events]
    gaps = [b.t_ms - a.t_ms for a, b in itertools.pairwise(text_events)]
    done_ms = upstream.structured_complete_ms if upstream else None
    lags: list[float] = []
    if upstream is not None:
        shown = text_char_times(state)
        lags = [c - u for c, u in zip(shown, upstream.text_times_ms, strict=False)]
    return {
        "ttfb_ms": non_empty[0] if non_empty else NAN,
        "ttfs_ms": _first(state, "status"),
        "ttfc_ms": ttfc,
        "ttft_ms": ttft,
        "total_ms": body_chunks[-1][0] if body_chunks else NAN,
        "changes_lag_ms": ttfc - done_ms if done_ms is not None else NAN,
        "text_lag_p50_ms": _percentile(lags, 50),
        "text_lag_p95_ms": _percentile(lags, 95),
        "chunk_chars_p50": _percentile(sizes, 50),
        "chunk_chars_max": float(max(sizes)) if sizes else NAN,
        "gap_ms_p50": _percentile(gaps, 50),
        "gap_ms_p95": _percentile(gaps, 95),
        "n_text_chunks": float(len(sizes)),
        "useful_ms": float(np.fmin(ttfc, ttft)),
    }
