"""A chat backend on the official ``openai.AsyncOpenAI`` client: ``POST /api/ask`` with
``{"prompt": {"text": ...}, "conversation": [...]}``, answered with its own events
(``answer.delta``, ``answer.done``, ``answer.error``, nested JSON; ``sdk_openai.dialect.yaml``
reads them). Over HTTP the SDK reads ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` (``--sut-cmd``
sets them).

The bug, switched on with ``?escape_newlines=1`` on the route: newlines are escaped by hand
(``\\n``) "so a line-based client cannot split an SSE line", but the client shows the data as
it is: the user reads a backslash and an ``n`` (``escape-leak``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ._starlette import sse

MODEL = "gpt-4o"
DIALECT = __file__.removesuffix(".py") + ".dialect.yaml"


def _text(content: Any) -> str:
    """A delta's text: a string, or (Mistral) a list of parts of which only text is shown."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content or ""


def _delta(text: str, escape_newlines: bool) -> bytes:
    shown = text.replace("\n", "\\n") if escape_newlines else text
    return sse("answer.delta", {"content": {"text": shown}})


async def reply(body: dict[str, Any], escape_newlines: bool) -> AsyncIterator[bytes]:
    messages = [*body.get("conversation", []), {"role": "user", "content": body["prompt"]["text"]}]
    shown: list[str] = []
    try:
        stream = await openai.AsyncOpenAI().chat.completions.create(
            model=MODEL, messages=messages, stream=True
        )
        async for part in stream:
            text = _text(part.choices[0].delta.content) if part.choices else ""
            if text:
                shown.append(text)
                yield _delta(text, escape_newlines)
    except openai.APIError as exc:
        yield sse("answer.error", {"error": {"message": str(exc), "partial": "".join(shown)}})
        return
    yield sse("answer.done", {"content": {"text": "".join(shown)}, "model": MODEL})


async def ask(request: Request) -> Response:
    body = await request.json()
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if not isinstance(prompt, dict) or not isinstance(prompt.get("text"), str):
        return JSONResponse({"detail": "prompt.text: a string is required"}, status_code=422)
    escape_newlines = request.query_params.get("escape_newlines") == "1"
    return StreamingResponse(reply(body, escape_newlines), media_type="text/event-stream")


app = Starlette(routes=[Route("/api/ask", ask, methods=["POST"])])
