"""A backend that calls Anthropic through aiohttp (which the in-process interception does not
answer): ``POST /messages`` with the streambench request, answered in the wire format. In
process its call must be stopped before it leaves the machine; over HTTP it works."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from streambench.sse import SSEDecoder

from ._starlette import sse_app
from .sse_events import chunk, done, error


async def reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
    base = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
    request = {"model": "claude-sonnet-4-20250514", "max_tokens": 1024, "stream": True}
    request["messages"] = [{"role": "user", "content": body["content"]}]
    shown = ""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{base}/v1/messages", json=request) as response,
        ):
            decoder = SSEDecoder()
            async for data in response.content.iter_any():
                for ev in decoder.feed(data):
                    delta = json.loads(ev.data).get("delta") or {}
                    if delta.get("type") == "text_delta":
                        shown += delta["text"]
                        yield chunk(delta["text"])
    except aiohttp.ClientError as exc:
        yield error(shown, str(exc))
        return
    yield done(shown, "anthropic")


app = sse_app(reply)
