"""A chat and code-edit backend on the official ``anthropic.AsyncAnthropic`` client, as a user
writes one: ``POST /v1/chat`` with ``{"message", "history", "task", "code"}``
(``anthropic-body.yaml`` builds it from a case), answered with its own events (``delta``,
``code``, ``finish``, ``failure``; ``sdk_anthropic.dialect.yaml`` reads them).

Chat: a 429 is retried once after its ``retry-after``; any other provider failure before text
was shown falls back to OpenAI (``openai.AsyncOpenAI``). Code edits (``task: job_code``): the
model answers with text and a ``suggest_code`` tool call; the text is held back until the
tool's input is complete, so the ``code`` event comes first.

The bug, switched on with ``?eager=1`` on the route: the text streams the moment it arrives
("lower time to first token"), before the code (``text-before-changes``). Over HTTP both SDKs
read their base URLs and keys from the environment (``--sut-cmd`` sets them)."""

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

from ._starlette import apply_edits, sse

MODEL = "claude-sonnet-4-20250514"
FALLBACK_MODEL = "gpt-4o"
DIALECT = __file__.removesuffix(".py") + ".dialect.yaml"
EDIT_TOOL = {
    "name": "suggest_code",
    "description": "Edit the user's job code.",
    "input_schema": {
        "type": "object",
        "properties": {"code_edits": {"type": "array", "items": {"type": "object"}}},
        "required": ["code_edits"],
    },
}


def _messages(body: dict[str, Any]) -> list[dict[str, str]]:
    history = [{"role": m["role"], "content": m["content"]} for m in body.get("history") or []]
    code = body.get("code") or ""
    asked = f"My code:\n{code}\n\n{body['message']}" if code else body["message"]
    return [*history, {"role": "user", "content": asked}]


async def _claude(messages: list[dict[str, str]], tools: list[Any]) -> AsyncIterator[Any]:
    """Text pieces (str) and complete tool inputs (dict) as the stream delivers them."""
    client = anthropic.AsyncAnthropic(max_retries=0)
    for attempt in range(2):
        try:
            async with client.messages.stream(
                model=MODEL,
                max_tokens=1024,
                messages=messages,
                **({"tools": tools} if tools else {}),
            ) as stream:
                async for event in stream:
                    if event.type == "text":
                        yield event.text
                    elif (
                        event.type == "content_block_stop"
                        and event.content_block.type == "tool_use"
                    ):
                        yield event.content_block.input
            return
        except anthropic.RateLimitError as exc:
            if attempt:
                raise
            await asyncio.sleep(float(exc.response.headers.get("retry-after", "1")))


async def _gpt(messages: list[dict[str, str]], _tools: list[Any]) -> AsyncIterator[Any]:
    client = openai.AsyncOpenAI(max_retries=0)
    stream = await client.chat.completions.create(
        model=FALLBACK_MODEL, messages=messages, stream=True
    )
    async for part in stream:
        if part.choices and part.choices[0].delta.content:
            yield part.choices[0].delta.content


async def reply(body: dict[str, Any], eager: bool) -> AsyncIterator[bytes]:
    messages = _messages(body)
    editing = body.get("task") == "job_code"
    tools = [EDIT_TOOL] if editing else []
    shown: list[str] = []
    held: list[str] = []
    code: str | None = None
    for provider, source in (("anthropic", _claude), ("openai", _gpt)):
        try:
            async for piece in source(messages, tools):
                if isinstance(piece, dict):
                    code = apply_edits(body.get("code") or "", piece.get("code_edits", []))
                    yield sse("code", {"source": code})
                    shown.extend(held)
                    for text in held:
                        yield sse("delta", {"text": text})
                    held = []
                elif editing and code is None and not eager:
                    held.append(piece)
                else:
                    shown.append(piece)
                    yield sse("delta", {"text": piece})
        except (anthropic.APIError, openai.APIError) as exc:
            if shown or held or provider == "openai":
                yield sse("failure", {"reason": f"{provider}: {exc}", "so_far": "".join(shown)})
                return
            continue
        for text in held:
            shown.append(text)
            yield sse("delta", {"text": text})
        yield sse("finish", {"reply": "".join(shown), "source": code, "model": provider})
        return


async def chat(request: Request) -> Response:
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return JSONResponse({"detail": "message: a string is required"}, status_code=422)
    eager = request.query_params.get("eager") == "1"
    return StreamingResponse(reply(body, eager), media_type="text/event-stream")


app = Starlette(routes=[Route("/v1/chat", chat, methods=["POST"])])
