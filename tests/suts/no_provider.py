"""Broken on purpose: a backend whose "demo mode" fallback (meant for local development
without a key) is switched on by a misspelt variable, so it never calls its provider and
streams a canned answer ending in ``done``; ``no-upstream-call`` must flag it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import anthropic
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from tests.suts.sse_events import chunk, done

DEMO_ANSWER = "This is a demo answer: set your API key to talk to the model."


async def reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
    if not os.environ.get("ANTHROPIC_KEY"):  # the bug: the SDK reads ANTHROPIC_API_KEY
        for word in DEMO_ANSWER.split(" "):
            yield chunk(word + " ")
        yield done(DEMO_ANSWER + " ", "demo")
        return
    client = anthropic.AsyncAnthropic()
    text = ""
    async with client.messages.stream(
        model="claude-sonnet-4-20250514",
        max_tokens=1024,
        messages=[{"role": "user", "content": body["content"]}],
    ) as stream:
        async for piece in stream.text_stream:
            text += piece
            yield chunk(piece)
    yield done(text, "anthropic")


async def messages(request: Request) -> Response:
    return StreamingResponse(reply(await request.json()), media_type="text/event-stream")


app = Starlette(routes=[Route("/messages", messages, methods=["POST"])])
