"""A deliberately naive streaming assistant, as the first version of apollo #407: it waits for
a fixed delimiter between code_edits and text_answer, and unescapes the text with a
two-character buffer. ``retrying_app`` is a chain that retries the next provider even after
text was shown (what skytwin #151 forbids)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from streambench.providers.apis import event_content
from streambench.sse import SSEDecoder

from ._starlette import prompt_messages

PREFILL = {"job_code": '{\n  "code_edits": [', "workflow": '{\n  "yaml": "'}
DELIMITER = {"job_code": '],\n  "text_answer": "', "workflow": '",\n  "text": "'}
UPSTREAMS = [
    ("anthropic-messages", "https://api.anthropic.com/v1/messages"),
    ("anthropic-messages", "https://backup.anthropic.example/v1/messages"),
]
ESCAPES = {"\\n": "\n", '\\"': '"', "\\\\": "\\", "\\t": "\t"}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


async def upstream_text(
    client: httpx.AsyncClient, index: int, body: dict[str, Any]
) -> AsyncIterator[str]:
    api, url = UPSTREAMS[index]
    messages = prompt_messages(body, PREFILL.get(body.get("mode", "chat"), ""))
    async with client.stream("POST", url, json={"stream": True, "messages": messages}) as response:
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                "upstream failed", request=response.request, response=response
            )
        decoder = SSEDecoder()
        async for data in response.aiter_raw():
            for ev in decoder.feed(data):
                for kind, text in event_content(api, ev):
                    if kind == "text":
                        yield text


def unescape_two_char_buffer(pending: str, delta: str) -> tuple[str, str]:
    """Holds back at most two characters when they hold a backslash; \\uXXXX is not handled."""
    text = pending + delta
    held = text[-2:] if "\\" in text[-2:] else ""
    ready = text[: len(text) - len(held)]
    for escape, char in ESCAPES.items():
        ready = ready.replace(escape, char)
    return ready, held


def resolve(code: str, edits: list[dict[str, Any]]) -> str:
    for edit in edits:
        if edit.get("action") == "rewrite":
            code = edit.get("new_code", "")
        elif edit.get("old_code", "") in code:
            code = code.replace(edit["old_code"], edit.get("new_code", ""), 1)
    return code


async def naive_reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
    mode = body.get("mode", "chat")
    original = (body.get("context") or {}).get("expression", "")
    yield sse("status", {"message": "Thinking..."})
    raw, pending, streaming = PREFILL.get(mode, ""), "", mode == "chat"
    async with httpx.AsyncClient() as client:
        async for delta in upstream_text(client, 0, body):
            raw += delta
            if streaming:
                shown, pending = unescape_two_char_buffer(pending, delta)
                if shown:
                    yield sse("chunk", {"content": shown})
                continue
            head, found, rest = raw.partition(DELIMITER[mode])
            if found:
                streaming = True
                if mode == "job_code":
                    edits = json.loads(head[len(PREFILL[mode]) - 1 :] + "]")
                    yield sse("changes", {"code": resolve(original, edits)})
                else:
                    yield sse("changes", {"yaml": json.loads(head[len(PREFILL[mode]) - 1 :] + '"')})
                shown, pending = unescape_two_char_buffer("", rest)
                if shown:
                    yield sse("chunk", {"content": shown})
    if pending:
        yield sse("chunk", {"content": pending})
    final: dict[str, Any] = {"content": raw, "code": None, "yaml": None}
    if mode in PREFILL:
        answer = json.loads(raw)
        final["content"] = answer.get("text_answer", answer.get("text", ""))
        if mode == "job_code":
            final["code"] = resolve(original, answer.get("code_edits", []))
        else:
            final["yaml"] = answer["yaml"]
    yield sse("done", final)


async def retrying_reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
    """Chat only: on any failure, the next provider answers from the start."""
    shown = ""
    async with httpx.AsyncClient() as client:
        for index in range(len(UPSTREAMS)):
            try:
                async for delta in upstream_text(client, index, body):
                    shown += delta
                    yield sse("chunk", {"content": delta})
            except httpx.HTTPError:
                continue
            yield sse("done", {"content": shown})
            return
    yield sse("error", {"partial_content": shown, "message": "all providers failed"})


def _app(reply: Any) -> Starlette:
    async def messages(request: Request) -> StreamingResponse:
        body = await request.json()
        return StreamingResponse(reply(body), media_type="text/event-stream")

    return Starlette(routes=[Route("/messages", messages, methods=["POST"])])


app = _app(naive_reply)
retrying_app = _app(retrying_reply)
