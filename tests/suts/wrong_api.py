"""Broken on purpose: a backend half-migrated to the OpenAI Responses API. It calls
``client.responses.create`` (``POST /v1/responses``) while its provider still serves chat
completions (or Anthropic messages), so it shows nothing; ``wrong-upstream`` must flag it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from tests.suts.sse_events import chunk, done, error


async def reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
    shown: list[str] = []
    try:
        stream = await openai.AsyncOpenAI(max_retries=0).responses.create(
            model="gpt-4o", input=body["content"], stream=True
        )
        async for event in stream:
            if event.type == "response.output_text.delta":
                shown.append(event.delta)
                yield chunk(event.delta)
    except openai.APIError as exc:
        yield error("".join(shown), str(exc))
        return
    yield done("".join(shown), "openai")


async def messages(request: Request) -> Response:
    return StreamingResponse(reply(await request.json()), media_type="text/event-stream")


app = Starlette(routes=[Route("/messages", messages, methods=["POST"])])
