"""A chat backend that batches the model's text to send fewer messages: it holds deltas until
100 characters have piled up (the "fewer PubSub broadcasts" optimisation). Every answer
arrives in a few big jumps: what lightning #4517's review calls "really big chunks"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from tests.suts.naive import _app, sse, upstream_text

FLUSH_CHARS = 100


async def batching_reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
    yield sse("status", {"message": "Thinking..."})
    shown, held = "", ""
    async with httpx.AsyncClient() as client:
        async for delta in upstream_text(client, 0, body):
            held += delta
            if len(held) >= FLUSH_CHARS:
                yield sse("chunk", {"content": held})
                shown, held = shown + held, ""
    if held:
        yield sse("chunk", {"content": held})
    yield sse("done", {"content": shown + held})


app = _app(batching_reply)
