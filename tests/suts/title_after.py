"""A chat backend that makes two upstream calls per request: the answer, streamed to the client
as it arrives, then a second call that names the thread (its title rides on ``done``). The
call that carried the answer is the first, not the last."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from streambench.providers.apis import event_content
from streambench.sse import SSEDecoder

from ._starlette import sse, sse_app

UPSTREAM = "https://api.anthropic.com/v1/messages"


async def stream_text(client: httpx.AsyncClient, prompt: str) -> AsyncIterator[str]:
    body = {"stream": True, "messages": [{"role": "user", "content": prompt}]}
    async with client.stream("POST", UPSTREAM, json=body) as response:
        decoder = SSEDecoder()
        async for data in response.aiter_raw():
            for ev in decoder.feed(data):
                for kind, text in event_content("anthropic-messages", ev):
                    if kind == "text":
                        yield text


async def reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
    answer = ""
    async with httpx.AsyncClient() as client:
        async for text in stream_text(client, body["content"]):
            answer += text
            yield sse("chunk", {"content": text})
        title = "".join([t async for t in stream_text(client, f"Title for: {answer}")])
    yield sse("done", {"content": answer, "title": title})


app = sse_app(reply)
