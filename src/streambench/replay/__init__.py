"""Replay recorded streams: other chunk splits, other timing, faults, on virtual or real time.

One :class:`ReplayPlan` (built by :func:`build_plan` from a transcript and spec strings),
several transports: :meth:`ReplayPlan.aiter`, :class:`ReplayTransport` / :func:`mock_upstream`
for httpx clients in process, and :func:`replay_app` for real HTTP (``streambench serve``).
"""

from __future__ import annotations

from streambench.replay.chunking import Chunking, parse_chunking
from streambench.replay.faults import Fault, parse_fault
from streambench.replay.latency import Latency, parse_latency
from streambench.replay.plan import Chunk, ReplayPlan, TimelineEntry, build_plan
from streambench.replay.server import ReplayApp, replay_app
from streambench.replay.transports import (
    ReplayTransport,
    RequestRecord,
    mock_upstream,
)
from streambench.replay.vtime import run_virtual, virtual_time

__all__ = [
    "Chunk",
    "Chunking",
    "Fault",
    "Latency",
    "ReplayApp",
    "ReplayPlan",
    "ReplayTransport",
    "RequestRecord",
    "TimelineEntry",
    "build_plan",
    "mock_upstream",
    "parse_chunking",
    "parse_fault",
    "parse_latency",
    "replay_app",
    "run_virtual",
    "virtual_time",
]
