"""A chat backend as many are written: FastAPI, the official ``anthropic`` SDK, and its own
SSE events. docs/backends.md grades it with streambench, in process and over HTTP.

``POST /api/chat`` with ``{"question": "...", "history": [{"role": ..., "content": ...}]}``
answers ``text/event-stream``:

- ``token`` ``{"text": "..."}``: a piece of the answer, as the model streams it;
- ``done`` ``{"answer": "...", "model": "..."}``: the whole answer, last;
- ``failed`` ``{"error": "...", "shown": "..."}``: the provider failed after ``shown``.

Run it with ``uvicorn fastapi_backend:app``; the SDK reads ``ANTHROPIC_API_KEY`` and
``ANTHROPIC_BASE_URL`` from the environment.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

MODEL = "claude-sonnet-4-20250514"

app = FastAPI()


class Turn(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    question: str
    history: list[Turn] = []


def event(name: str, data: dict[str, str]) -> bytes:
    """One SSE event: JSON data keeps newlines in the text off the SSE framing."""
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def answer(request: ChatRequest) -> AsyncIterator[bytes]:
    messages = [turn.model_dump() for turn in request.history]
    messages.append({"role": "user", "content": request.question})
    shown = ""
    try:
        client = anthropic.AsyncAnthropic()
        async with client.messages.stream(
            model=MODEL, max_tokens=1024, messages=messages
        ) as stream:
            async for text in stream.text_stream:
                shown += text
                yield event("token", {"text": text})
    # not only anthropic.APIError: a connection dropped mid-stream raises the SDK's HTTP
    # client's own error, and the user must still get a failed event, never a bare close
    except Exception as exc:
        yield event("failed", {"error": str(exc), "shown": shown})
        return
    yield event("done", {"answer": shown, "model": MODEL})


@app.post("/api/chat")
async def chat(request: ChatRequest) -> StreamingResponse:
    return StreamingResponse(answer(request), media_type="text/event-stream")
