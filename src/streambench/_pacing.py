"""Pacing: hand out items at planned offsets from a start, the one loop every sender uses.

Offsets are absolute (from the start), never "sleep after each item": a slow write or a
busy loop delays one item, not every item after it. ``plan.aiter``, the httpx replay
transport (async and sync), ``serve`` and ``fake-provider`` all pace through here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


async def paced(
    schedule: Iterable[tuple[float, T]], speed: float = 1.0
) -> AsyncIterator[tuple[float, T]]:
    """Yield each ``(t_ms, item)`` at ``start + t_ms / speed`` on the running loop's clock
    (virtual on a virtual-time loop); items already due go out without waiting. A virtual-time
    loop that can prove nothing else would run meanwhile moves its clock at once instead of
    sleeping (same times, no timer, no loop cycle)."""
    loop = asyncio.get_running_loop()
    jump = getattr(loop, "jump_if_idle", None)
    start = loop.time()
    for t_ms, item in schedule:
        delay = start + t_ms / 1000.0 / speed - loop.time()
        if delay > 0 and (jump is None or not jump(delay)):
            await asyncio.sleep(delay)
        yield t_ms, item


def paced_sync(
    schedule: Iterable[tuple[float, T]], speed: float = 1.0
) -> Iterator[tuple[float, T]]:
    """:func:`paced` for synchronous callers: real time (``time.monotonic``)."""
    start = time.monotonic()
    for t_ms, item in schedule:
        delay = start + t_ms / 1000.0 / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield t_ms, item
