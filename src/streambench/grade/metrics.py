"""Metrics of one run, in ms since the request (NaN when the thing never happened)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypedDict

from streambench.grade.client import ClientState
from streambench.grade.dialects import UIEvent
from streambench.grade.upstream import UpstreamContent

NAN = math.nan


class Smoothness(TypedDict):
    """How the text arrived on screen (docs/evaluation.md, "Perceived smoothness"); NaN
    without paints."""

    paint_rate_cps: Annotated[float, "characters shown per second between first and last paint"]
    jump_chars_max: Annotated[float, "characters of the largest single paint"]
    jump_share_max: Annotated[float, "the largest paint's share of the text (1.0: all at once)"]
    midword_paint_share: Annotated[float, "share of paints that end mid-word"]
    stall_count: Annotated[float, "gaps between screen updates longer than 500 ms"]
    stall_ms_max: Annotated[float, "the longest gap between screen updates"]
    second_paint_ms: Annotated[float, "when the second paint came (the stream visibly moving)"]
    itl_per_chunk_ms: Annotated[float, "inter-token latency, vLLM convention (mean chunk gap)"]
    itl_per_token_ms: Annotated[float, "inter-token latency, GenAI-Perf convention (per token)"]


class Timing(TypedDict):
    """When things happened, ms since the request; NaN when the thing never happened."""

    ttfb_ms: Annotated[float, "first non-empty body bytes from the SUT"]
    ttfs_ms: Annotated[float, "first status event"]
    ttfc_ms: Annotated[float, "first changes event"]
    ttft_ms: Annotated[float, "first non-empty text event"]
    total_ms: Annotated[float, "the response body ended"]
    changes_lag_ms: Annotated[float, "ttfc minus when the upstream completed the changes"]
    text_lag_p50_ms: Annotated[float, "per character: client time minus upstream time, p50"]
    text_lag_p95_ms: Annotated[float, "per character: client time minus upstream time, p95"]
    chunk_chars_p50: Annotated[float, "text event size, p50"]
    chunk_chars_max: Annotated[float, "text event size, largest"]
    gap_ms_p50: Annotated[float, "gap between text events, p50"]
    gap_ms_p95: Annotated[float, "gap between text events, p95"]
    n_text_chunks: Annotated[float, "non-empty text events"]
    useful_ms: Annotated[float, "min(ttfc, ttft): when the user first sees something useful"]


class Metrics(Timing, Smoothness):
    """Every metric column of a run, timing first (the order of a result row)."""


SMOOTHNESS_COLUMNS = tuple(Smoothness.__annotations__)
METRIC_COLUMNS = tuple(Metrics.__annotations__)
# A gap between screen updates after the first text longer than this reads as the stream stalling.
STALL_MS = 500.0
# Tokens without the model's tokenizer (none offline): runs of word characters or single signs.
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _firsts(state: ClientState) -> dict[str, float]:
    """When the first event of each kind came (a text event: the first with text)."""
    firsts: dict[str, float] = {}
    for event in state.timeline:
        if event.kind not in firsts and (event.kind != "text" or event.text):
            firsts[event.kind] = event.t_ms
    return firsts


def percentile(values: Sequence[float], q: float) -> float:
    """``numpy.percentile(values, q)`` (its default linear method) to the bit, NaN when empty:
    the same arithmetic in Python, without building an array for a few values per run."""
    return percentiles(values, (q,))[0]


def percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    """:func:`percentile` of ``values`` at each of ``qs`` (sorted once)."""
    if not values or any(map(math.isnan, values)):
        return [NAN] * len(qs)
    ordered = sorted(values)
    return [_of_sorted(ordered, q) for q in qs]


def _of_sorted(ordered: list[float], q: float) -> float:
    virtual = (len(ordered) - 1) * (q / 100)
    if virtual >= len(ordered) - 1:
        return float(ordered[-1])
    below = math.floor(virtual)
    low, high = ordered[below], ordered[below + 1]
    weight = virtual - below
    step = high - low
    # numpy interpolates from the nearer end (from above when weight >= 0.5)
    return float(high - step * (1 - weight)) if weight >= 0.5 else float(low + step * weight)


def mean(values: Sequence[float]) -> float:
    """``numpy.mean(values)`` to the bit (its pairwise summation), NaN when empty: a run's
    few values need no array, and grading needs no numpy."""
    if not values:
        return NAN
    # numpy adds the sum to its identity: 0.0 + -0.0 is 0.0
    return (0.0 + _pairwise_sum([float(v) for v in values], 0, len(values))) / len(values)


# numpy's pairwise summation: 8 running sums over blocks of up to this many values, halved above.
_PAIRWISE_BLOCK = 128


def _pairwise_sum(values: list[float], start: int, n: int) -> float:
    """The sum of ``values[start:start + n]`` in numpy's order of additions."""
    if n < 8:
        total = 0.0
        for value in values[start : start + n]:
            total += value
        return total
    if n <= _PAIRWISE_BLOCK:
        end = start + n - n % 8
        sums = []
        for lane in range(8):
            column = values[start + lane : end : 8]
            running = column[0]
            for value in column[1:]:
                running += value
            sums.append(running)
        total = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + (
            (sums[4] + sums[5]) + (sums[6] + sums[7])
        )
        for value in values[end : start + n]:
            total += value
        return total
    half = n // 2
    half -= half % 8
    return _pairwise_sum(values, start, half) + _pairwise_sum(values, start + half, n - half)


def _fmin(a: float, b: float) -> float:
    """``numpy.fmin`` of two floats: the smaller, ignoring a NaN (NaN only when both are)."""
    if a != a:
        return b
    return a if b != b or a <= b else b


def _text_events(state: ClientState) -> list[UIEvent]:
    """The text events that carry text, in order."""
    return [ev for ev in state.timeline if ev.kind == "text" and ev.text]


@dataclass(frozen=True)
class Paint:
    """Text the client put on screen at once: every text event that arrived at ``t_ms``."""

    t_ms: float
    text: str


def paints(state: ClientState) -> list[Paint]:
    """The streamed text as screen updates; events delivered together paint together."""
    return _paints(_text_events(state))


def _paints(text_events: list[UIEvent]) -> list[Paint]:
    out: list[Paint] = []
    for event in text_events:
        text = event.text or ""
        if out and out[-1].t_ms == event.t_ms:
            out[-1] = Paint(event.t_ms, out[-1].text + text)
        else:
            out.append(Paint(event.t_ms, text))
    return out


def still_spans(state: ClientState) -> list[tuple[float, float]]:
    """(from, to) ms between screen updates after the first text: paint to paint, and the last
    paint to the terminal event (text frozen until done/error is a stall too)."""
    return _still_spans(paints(state), state.terminal)


def _still_spans(shown: list[Paint], terminal: UIEvent | None) -> list[tuple[float, float]]:
    updates = [p.t_ms for p in shown]
    if updates and terminal is not None and terminal.t_ms > updates[-1]:
        updates.append(terminal.t_ms)
    return list(itertools.pairwise(updates))


def smoothness(state: ClientState, stall_ms: float = STALL_MS) -> Smoothness:
    """How the stream felt (docs/evaluation.md, "Perceived smoothness")."""
    text_events = _text_events(state)
    chunk_gaps = [b.t_ms - a.t_ms for a, b in itertools.pairwise(text_events)]
    return _smoothness(state, text_events, chunk_gaps, stall_ms)


def _smoothness(
    state: ClientState, text_events: list[UIEvent], chunk_gaps: list[float], stall_ms: float
) -> Smoothness:
    """:func:`smoothness` from the text events and the gaps between them."""
    shown = _paints(text_events)
    if not shown:
        return Smoothness(**dict.fromkeys(SMOOTHNESS_COLUMNS, NAN))  # type: ignore[typeddict-item]
    sizes = [len(p.text) for p in shown]
    total, jump = sum(sizes), max(sizes)
    span_s = (shown[-1].t_ms - shown[0].t_ms) / 1000
    gaps = [b - a for a, b in _still_spans(shown, state.terminal)]
    tokens = [max(1, len(_TOKEN.findall(ev.text or ""))) for ev in text_events[1:]]
    pairs = itertools.pairwise(shown)
    midword = sum(a.text[-1].isalnum() and b.text[0].isalnum() for a, b in pairs)  # mid-word
    return {
        "paint_rate_cps": total / span_s if span_s > 0 else NAN,
        "jump_chars_max": float(jump),
        "jump_share_max": jump / total,
        "midword_paint_share": midword / len(shown),
        "stall_count": float(sum(g > stall_ms for g in gaps)),
        "stall_ms_max": max(gaps, default=0.0),
        "second_paint_ms": shown[1].t_ms if len(shown) > 1 else NAN,
        "itl_per_chunk_ms": mean(chunk_gaps),
        "itl_per_token_ms": sum(chunk_gaps) / sum(tokens) if tokens else NAN,
    }


def compute_metrics(
    body_chunks: Sequence[tuple[float, bytes]],
    state: ClientState,
    upstream: UpstreamContent | None,
) -> Metrics:
    """``body_chunks``: the SUT's response body as (t_ms, bytes); ``upstream``: the content of
    the upstream call that served the answer, already on the request's clock."""
    firsts = _firsts(state)
    ttfc, ttft = firsts.get("changes", NAN), firsts.get("text", NAN)
    text_events = _text_events(state)
    sizes = [len(ev.text or "") for ev in text_events]
    gaps = [b.t_ms - a.t_ms for a, b in itertools.pairwise(text_events)]
    done_ms = upstream.structured_complete_ms if upstream else None
    lags: list[float] = []
    if upstream is not None:
        shown = [ev.t_ms for ev in text_events for _ in ev.text or ""]  # each character's time
        lags = [c - u for c, u in zip(shown, upstream.text_times_ms, strict=False)]
    lag_p50, lag_p95 = percentiles(lags, (50, 95))
    gap_p50, gap_p95 = percentiles(gaps, (50, 95))
    return {
        "ttfb_ms": next((t for t, data in body_chunks if data), NAN),
        "ttfs_ms": firsts.get("status", NAN),
        "ttfc_ms": ttfc,
        "ttft_ms": ttft,
        "total_ms": body_chunks[-1][0] if body_chunks else NAN,
        "changes_lag_ms": ttfc - done_ms if done_ms is not None else NAN,
        "text_lag_p50_ms": lag_p50,
        "text_lag_p95_ms": lag_p95,
        "chunk_chars_p50": percentile(sizes, 50),
        "chunk_chars_max": float(max(sizes)) if sizes else NAN,
        "gap_ms_p50": gap_p50,
        "gap_ms_p95": gap_p95,
        "n_text_chunks": float(len(sizes)),
        "useful_ms": _fmin(ttfc, ttft),
        **_smoothness(state, text_events, gaps, STALL_MS),
    }
