"""A chat backend whose failover chain ends in a non-streaming call, as a user writes one with
httpx: Anthropic streamed, then OpenAI streamed, then Anthropic with ``"stream": false`` (one
JSON body: `streambench chaos`'s default chain). ``app`` keeps the failover contract;
``dropped_fallback_app`` reads the fallback's JSON by the legacy Text Completions field
(``completion``), so a failover to it shows the user nothing but ``done``."""

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
from tests.suts.failover import UpstreamFailed, anthropic_deltas, sse


async def openai_deltas(client: httpx.AsyncClient, body: dict[str, Any]) -> AsyncIterator[str]:
    """The text deltas of one streamed Chat Completions call; UpstreamFailed unless it ends
    with ``[DONE]``."""
    base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    request = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": body.get("content", "")}],
    }
    try:
        async with client.stream("POST", f"{base}/chat/completions", json=request) as response:
            if response.status_code != 200:
                raise UpstreamFailed(f"HTTP {response.status_code}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                if line[5:].strip() == "[DONE]":
                    return
                try:
                    event = json.loads(line[5:])
                except json.JSONDecodeError as exc:
                    raise UpstreamFailed(f"bad event: {exc}") from None
                if "error" in event:
                    raise UpstreamFailed(str(event["error"]))
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield text
    except httpx.TransportError as exc:
        raise UpstreamFailed(f"connection: {exc!r}") from None
    raise UpstreamFailed("stream ended without [DONE]")


async def anthropic_answer(client: httpx.AsyncClient, body: dict[str, Any], field: str) -> str:
    """The text of one non-streaming Messages call, read from ``field`` of the response."""
    base = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com").rstrip("/")
    request = {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 1024,
        "stream": False,
        "messages": [{"role": "user", "content": body.get("content", "")}],
    }
    try:
        response = await client.post(f"{base}/v1/messages", json=request)
        if response.status_code != 200:
            raise UpstreamFailed(f"HTTP {response.status_code}")
        data = response.json()
    except (httpx.TransportError, ValueError) as exc:
        raise UpstreamFailed(f"no answer: {exc!r}") from None
    if field == "completion":
        return str(data.get("completion", ""))  # the bug: Messages answers in content blocks
    return "".join(b.get("text", "") for b in data.get("content", []) if b.get("type") == "text")


async def reply(body: dict[str, Any], field: str) -> AsyncIterator[bytes]:
    failures = []
    async with httpx.AsyncClient(timeout=30) as client:
        for deltas in (anthropic_deltas, openai_deltas):
            shown = ""
            try:
                async for delta in deltas(client, body):
                    shown += delta
                    yield sse("chunk", {"content": delta})
            except UpstreamFailed as exc:
                if shown:  # committed: never retry after text was shown
                    yield sse("error", {"message": str(exc), "partial_content": shown})
                    return
                failures.append(str(exc))
                continue
            yield sse("done", {"content": shown})
            return
        try:
            text = await anthropic_answer(client, body, field)
        except UpstreamFailed as exc:
            message = "; ".join([*failures, str(exc)])
            yield sse("error", {"message": f"all providers failed: {message}"})
            return
    if text:
        yield sse("chunk", {"content": text})
    yield sse("done", {"content": text})


def _app(field: str) -> Starlette:
    async def messages(request: Request) -> StreamingResponse:
        return StreamingResponse(reply(await request.json(), field), media_type="text/event-stream")

    return Starlette(routes=[Route("/messages", messages, methods=["POST"])])


app = _app("content")
dropped_fallback_app = _app("completion")
