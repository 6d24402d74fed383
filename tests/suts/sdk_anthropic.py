"""A chat backend on the official ``anthropic.AsyncAnthropic`` client, as a user writes one:
``POST /v1/chat`` with ``{"message": ..., "history": [...]}``, answered in the streambench wire
format. A 429 is retried once after its ``retry-after``; any other provider failure before
text was shown falls back to OpenAI (``openai.AsyncOpenAI``). Over HTTP, both SDKs read
their base URLs and keys from the environment (``--sut-cmd`` sets them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import openai
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from tests.suts.sse_events import chunk, done, error

MODEL = "claude-sonnet-4-20250514"
FALLBACK_MODEL = "gpt-4o"


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    history = [{"role": m["role"], "content": m["content"]} for m in body.get("history") or []]
    return [*history, {"role": "user", "content": body["message"]}]


async def _claude(messages: list[dict[str, str]]) -> AsyncIterator[str]:
    client = anthropic.AsyncAnthropic(max_retries=0)
    for attempt in range(2):
        try:
            async with client.messages.stream(
                model=MODEL, max_tokens=1024, messages=messages
            ) as stream:
                async for text in stream.text_stream:
                    yield text
            return
        except anthropic.RateLimitError as exc:
            if attempt:
                raise
            await asyncio.sleep(float(exc.response.headers.get("retry-after", "1")))


async def _gpt(messages: list[dict[str, str]]) -> AsyncIterator[str]:
    client = openai.AsyncOpenAI(max_retries=0)
    stream = await client.chat.completions.create(
        model=FALLBACK_MODEL, messages=messages, stream=True
    )
    async for part in stream:
        if part.choices and part.choices[0].delta.content:
            yield part.choices[0].delta.content


async def reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
    messages = _messages(body)
    shown: list[str] = []
    for provider, source in (("anthropic", _claude), ("openai", _gpt)):
        try:
            async for text in source(messages):
                shown.append(text)
                yield chunk(text)
        except (anthropic.APIError, openai.APIError) as exc:
            if shown or provider == "openai":
                yield error("".join(shown), f"{provider}: {exc}")
                return
            continue
        yield done("".join(shown), provider)
        return


async def chat(request: Request) -> Response:
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return JSONResponse({"detail": "message: a string is required"}, status_code=422)
    return StreamingResponse(reply(body), media_type="text/event-stream")


app = Starlette(routes=[Route("/v1/chat", chat, methods=["POST"])])
