"""An async app calling the sync ``anthropic.Anthropic`` client from a worker thread
(``run_in_threadpool``), as apps ported from Flask do: correct, but it waits outside the
event loop, which virtual time cannot follow (run it with ``clock=real`` or over HTTP)."""

from __future__ import annotations

import anthropic
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from tests.suts.sse_events import chunk, done


def ask_claude(content: str) -> str:
    client = anthropic.Anthropic(max_retries=0)
    with client.messages.stream(
        model="claude-sonnet-4-20250514",
        max_tokens=1024,
        messages=[{"role": "user", "content": content}],
    ) as stream:
        return "".join(stream.text_stream)


async def messages(request: Request) -> Response:
    body = await request.json()
    text = await run_in_threadpool(ask_claude, body["content"])

    async def reply():
        yield chunk(text)
        yield done(text, "anthropic")

    return StreamingResponse(reply(), media_type="text/event-stream")


app = Starlette(routes=[Route("/messages", messages, methods=["POST"])])
