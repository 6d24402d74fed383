"""A backend on OpenAI tool calls (raw httpx, no SDK) with its own route, body and event
names: ``POST /v1/edit`` with ``{"instruction": ..., "source": {"text": ...}}``
(``tool_backend-body.yaml`` builds it from a case), answered with ``token``, ``patch``, ``end``
and ``oops`` events (``tool_backend.dialect.yaml`` reads them).

The model calls two tools in parallel: ``lookup_docs`` and ``answer``, whose input is
``{"code_edits": [...], "text_answer": "..."}``. The app parses the ``answer`` input
incrementally (keyed by the tool call's ``index``): ``patch`` the moment the edits are
complete, then the explanation as ``token`` events. The bugs, each a query flag on the route:

- ``?fast=1``: streams the explanation by slicing the raw arguments after
  ``"text_answer": "`` (no JSON parsing, "faster"), so JSON escapes (``\\n``, ``\\"``) reach
  the user (``escape-leak``);
- ``?schema=v1``: reads the edits under the tool schema's old key ``edits``, so no ``patch``
  is sent and ``end`` carries no code (``missing-changes``, ``wrong-code``).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from streambench.answer import JsonObjectStream, MemberDone, StringDelta
from streambench.sse import SSEDecoder

from ._starlette import apply_edits, prompt_messages, sse

DIALECT = __file__.removesuffix(".py") + ".dialect.yaml"


async def tool_arguments(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> AsyncIterator[tuple[str, str]]:
    """``(tool name, arguments piece)`` as the upstream streams them, parallel calls apart."""
    names: dict[int, str] = {}
    # over HTTP, streambench points OPENAI_BASE_URL at its replay host
    base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
    request = {"stream": True, "messages": prompt_messages(body)}
    async with client.stream("POST", f"{base}/chat/completions", json=request) as response:
        decoder = SSEDecoder()
        async for data in response.aiter_raw():
            for ev in decoder.feed(data):
                if ev.data.strip() == "[DONE]":
                    return
                chunk = json.loads(ev.data)
                if "error" in chunk:
                    raise RuntimeError(chunk["error"].get("message", "upstream error"))
                for choice in chunk.get("choices") or []:
                    for call in (choice.get("delta") or {}).get("tool_calls") or []:
                        function = call.get("function") or {}
                        if function.get("name"):
                            names[call["index"]] = function["name"]
                        if function.get("arguments"):
                            yield names.get(call["index"], ""), function["arguments"]


async def reply(body: dict[str, Any], *, leak: bool, edits_key: str) -> AsyncIterator[bytes]:
    original = body["source"].get("text") or ""
    parser, raw, shown, code = JsonObjectStream(), "", "", None
    try:
        async with httpx.AsyncClient() as client:
            # this backend's own body: the instruction and the code under "source"
            prompt = {"content": body.get("instruction", ""), "context": {"expression": original}}
            async for name, piece in tool_arguments(client, prompt):
                if name != "answer":
                    continue
                raw += piece
                for event in parser.feed(piece):
                    if isinstance(event, MemberDone) and event.key == edits_key:
                        code = apply_edits(original, event.value)
                        yield sse("patch", {"source": code})
                    elif isinstance(event, StringDelta) and event.key == "text_answer" and not leak:
                        shown += event.text
                        yield sse("token", {"t": event.text})
                if leak and '"text_answer": "' in raw:
                    text = raw.split('"text_answer": "', 1)[1].removesuffix('"}')
                    if len(text) > len(shown):
                        yield sse("token", {"t": text[len(shown) :]})
                        shown = text
    except (RuntimeError, httpx.HTTPError) as exc:
        yield sse("oops", {"why": str(exc), "shown": shown})
        return
    yield sse("end", {"answer": shown, "source": code})


async def edit(request: Request) -> Response:
    body = await request.json()
    if not isinstance(body, dict) or not isinstance(body.get("source"), dict):
        return JSONResponse({"detail": "source: an object is required"}, status_code=422)
    flags = request.query_params
    edits_key = "edits" if flags.get("schema") == "v1" else "code_edits"
    stream = reply(body, leak=flags.get("fast") == "1", edits_key=edits_key)
    return StreamingResponse(stream, media_type="text/event-stream")


app = Starlette(routes=[Route("/v1/edit", edit, methods=["POST"])])
