"""A chat backend on the official google-genai client (``client.aio``): ``POST /gemini`` with
``{"question": ...}``, answered in the streambench wire format. Over HTTP the client reads
``GOOGLE_API_KEY`` and its base URL from ``GOOGLE_GEMINI_BASE_URL`` (``--sut-cmd`` sets them)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

from google import genai
from google.genai import errors, types
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from tests.suts.sse_events import chunk, done, error

MODEL = "gemini-2.5-flash"


def _client() -> genai.Client:
    base_url = os.environ.get("GOOGLE_GEMINI_BASE_URL")
    options = types.HttpOptions(base_url=base_url) if base_url else None
    return genai.Client(api_key=os.environ["GOOGLE_API_KEY"], http_options=options)


async def reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
    shown: list[str] = []
    try:
        stream = await _client().aio.models.generate_content_stream(
            model=MODEL, contents=body["question"]
        )
        async for part in stream:
            if part.text:
                shown.append(part.text)
                yield chunk(part.text)
    except errors.APIError as exc:
        yield error("".join(shown), str(exc))
        return
    yield done("".join(shown), "google")


async def gemini(request: Request) -> Response:
    return StreamingResponse(reply(await request.json()), media_type="text/event-stream")


app = Starlette(routes=[Route("/gemini", gemini, methods=["POST"])])
