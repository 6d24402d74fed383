"""A chat backend with its own two-provider failover (both Anthropic, at ANTHROPIC_BASE_URL), as
a user writes one with httpx: ``app`` keeps the failover contract; ``retry_after_text_app``
moves on to the next provider on any error, even after text was shown; ``swallowing_app``
catches a mid-stream failure and ends in ``done`` with the half answer."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

ATTEMPTS = 2


class UpstreamFailed(Exception):
    """The provider's stream ended without a complete answer."""


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def anthropic_deltas(client: httpx.AsyncClient, body: dict[str, Any]) -> AsyncIterator[str]:
    """The text deltas of one streamed Messages call; UpstreamFailed unless it ends cleanly."""
    base = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com").rstrip("/")
    request = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 1024,
        "stream": True,
        "messages": [{"role": "user", "content": body.get("content", "")}],
    }
    try:
        async with client.stream("POST", f"{base}/v1/messages", json=request) as response:
            if response.status_code != 200:
                raise UpstreamFailed(f"HTTP {response.status_code}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                try:
                    event = json.loads(line[5:])
                except json.JSONDecodeError as exc:
                    raise UpstreamFailed(f"bad event: {exc}") from None
                if event.get("type") == "error":
                    raise UpstreamFailed(event.get("error", {}).get("message", "error"))
                if event.get("type") == "message_stop":
                    return
                delta = event.get("delta") or {}
                if event.get("type") == "content_block_delta" and "text" in delta:
                    yield delta["text"]
    except httpx.TransportError as exc:
        raise UpstreamFailed(f"connection: {exc!r}") from None
    raise UpstreamFailed("stream ended without message_stop")


async def reply(body: dict[str, Any], policy: str) -> AsyncIterator[bytes]:
    shown = ""
    async with httpx.AsyncClient(timeout=30) as client:
        for attempt in range(ATTEMPTS):
            try:
                async for delta in anthropic_deltas(client, body):
                    shown += delta
                    yield sse("chunk", {"content": delta})
            except UpstreamFailed as exc:
                if shown and policy == "swallow":
                    break  # the bug: a half answer is reported as the answer
                last = attempt == ATTEMPTS - 1
                if last or (shown and policy == "contract"):
                    yield sse("error", {"message": str(exc), "partial_content": shown})
                    return
                continue  # retry_after_text also lands here with text already shown
            break
    yield sse("done", {"content": shown})


def _app(policy: str) -> Starlette:
    async def messages(request: Request) -> StreamingResponse:
        return StreamingResponse(
            reply(await request.json(), policy), media_type="text/event-stream"
        )

    return Starlette(routes=[Route("/messages", messages, methods=["POST"])])


app = _app("contract")
retry_after_text_app = _app("retry")
swallowing_app = _app("swallow")
