"""A chat backend on the official ``openai.AsyncOpenAI`` client: ``POST /api/ask`` with
``{"prompt": {"text": ...}, "conversation": [...]}``, answered in the streambench wire format.
Over HTTP the SDK reads ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` (``--sut-cmd`` sets them)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from tests.suts.sse_events import chunk, done, error

MODEL = "gpt-4o"


def _text(content: Any) -> str:
    """A delta's text: a string, or (Mistral) a list of parts of which only text is shown."""
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if p.get("type") == "text")
    return content or ""


async def reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
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
                yield chunk(text)
    except openai.APIError as exc:
        yield error("".join(shown), str(exc))
        return
    yield done("".join(shown), "openai")


async def ask(request: Request) -> Response:
    body = await request.json()
    prompt = body.get("prompt") if isinstance(body, dict) else None
    if not isinstance(prompt, dict) or not isinstance(prompt.get("text"), str):
        return JSONResponse({"detail": "prompt.text: a string is required"}, status_code=422)
    return StreamingResponse(reply(body), media_type="text/event-stream")


app = Starlette(routes=[Route("/api/ask", ask, methods=["POST"])])
