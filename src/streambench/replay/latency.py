"""Latency models: when each recorded event is complete upstream, in ms since the request.

``recorded`` reads the transcript's chunk times; ``scale:F`` multiplies them (or the default
model's); ``const:ttfb=MS,gap=MS`` and ``tokens:rate=TPS,ttfb=MS`` generate them;
``+jitter:sd=MS`` adds seeded gaussian noise to every gap (never making time run backwards).
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass, replace

from streambench.errors import SpecError
from streambench.replay.frames import Frame
from streambench.replay.specs import parse_terms

CHARS_PER_TOKEN = 4.0
DEFAULT_RATE_TPS = 50.0
DEFAULT_TTFB_MS = 300.0


@dataclass(frozen=True)
class Latency:
    """``base`` is recorded, default (recorded when timed, else tokens), const or tokens."""

    spec: str = "default"
    base: str = "default"
    factor: float = 1.0
    ttfb_ms: float = DEFAULT_TTFB_MS
    gap_ms: float = 0.0
    rate_tps: float = DEFAULT_RATE_TPS
    jitter_sd_ms: float = 0.0

    def frame_times(
        self,
        frames: list[Frame],
        recorded: list[tuple[float, int]] | None,
        rng: random.Random,
        source: str = "transcript",
    ) -> list[float]:
        """The time (ms) each frame's last byte is ready upstream; non-decreasing."""
        base = self.base
        if base == "default":
            base = "recorded" if recorded else "tokens"
        if base == "recorded":
            if not recorded:
                raise SpecError(f"spec {self.spec!r}: {source} has no recorded chunk times")
            times = _recorded_times(frames, recorded)
        elif base == "const":
            times = list(
                itertools.accumulate(
                    self.ttfb_ms if i == 0 else self.gap_ms for i in range(len(frames))
                )
            )
        else:
            ms_per_char = 1000.0 / (self.rate_tps * CHARS_PER_TOKEN)
            gaps = (f.content_chars * ms_per_char for f in frames)
            times = [self.ttfb_ms + t for t in itertools.accumulate(gaps)]
        times = [t * self.factor for t in times]
        if self.jitter_sd_ms > 0:
            times = _jitter(times, self.jitter_sd_ms, rng)
        return times


def _recorded_times(frames: list[Frame], recorded: list[tuple[float, int]]) -> list[float]:
    """A frame is ready when the recorded chunk holding its last byte arrived."""
    chunk_ends = list(itertools.accumulate(n for _, n in recorded))
    times: list[float] = []
    end = 0
    for frame in frames:
        end += len(frame.raw)
        i = min(bisect.bisect_left(chunk_ends, end), len(recorded) - 1)
        times.append(float(recorded[i][0]))
    return times


def _jitter(times: list[float], sd_ms: float, rng: random.Random) -> list[float]:
    out: list[float] = []
    prev_in = prev_out = 0.0
    for t in times:
        gap = max(0.0, t - prev_in + rng.gauss(0.0, sd_ms))
        prev_in, prev_out = t, prev_out + gap
        out.append(prev_out)
    return out


def parse_latency(spec: str) -> Latency:
    """``recorded``, ``scale:F``, ``const:ttfb=MS,gap=MS``, ``tokens:rate=TPS,ttfb=MS``, each
    optionally ``+jitter:sd=MS`` (``jitter:sd=MS`` alone jitters the default model)."""
    latency = Latency(spec=spec)
    seen_base = False
    for term in parse_terms(spec):
        if term.name == "jitter":
            term.check_options({"sd"})
            if term.arg is not None:
                raise term.fail("use jitter:sd=MS")
            latency = replace(latency, jitter_sd_ms=term.number("sd", minimum=0))
            continue
        if seen_base:
            raise term.fail("only one base model (recorded, scale, const, tokens) plus jitter")
        seen_base = True
        if term.name == "recorded":
            if term.arg is not None or term.options:
                raise term.fail("'recorded' takes no arguments")
            latency = replace(latency, base="recorded")
        elif term.name == "scale":
            term.check_options(set())
            latency = replace(latency, base="default", factor=term.number("", minimum=0))
        elif term.name == "const":
            term.check_options({"ttfb", "gap"})
            if term.arg is not None:
                raise term.fail("use const:ttfb=MS,gap=MS")
            latency = replace(
                latency,
                base="const",
                ttfb_ms=term.number("ttfb", 0.0),
                gap_ms=term.number("gap", 0.0),
            )
        elif term.name == "tokens":
            term.check_options({"rate", "ttfb"})
            if term.arg is not None:
                raise term.fail("use tokens:rate=TPS,ttfb=MS")
            rate = term.number("rate", DEFAULT_RATE_TPS)
            if rate <= 0:
                raise term.fail("rate= must be above 0")
            latency = replace(
                latency, base="tokens", rate_tps=rate, ttfb_ms=term.number("ttfb", DEFAULT_TTFB_MS)
            )
        else:
            raise term.fail(
                f"unknown latency {term.name!r} (known: recorded, scale, const, tokens, jitter)"
            )
    return latency
