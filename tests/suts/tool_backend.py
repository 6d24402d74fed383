"""A backend on OpenAI tool calls with its own event names (``token``, ``patch``, ``end``,
``oops``), graded through the dialect file next to it (``tool_backend.dialect.yaml``).

The model calls two tools in parallel: ``lookup_docs`` and ``answer``, whose input is
``{"code_edits": [...], "text_answer": "..."}``. ``app`` parses the ``answer`` input
incrementally (keyed by the tool call's ``index``): ``patch`` the moment the edits are
complete, then the explanation as ``token`` events. The bugs, each an app of its own:

- ``leaky_app``: streams the explanation by slicing the raw arguments after
  ``"text_answer": "``, so JSON escapes (``\\n``, ``\\"``) reach the user;
- ``dropped_code_app``: never sends ``patch`` and forgets the code in ``end``.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx

from streambench.answer import JsonObjectStream, MemberDone, StringDelta
from streambench.sse import SSEDecoder

from ._starlette import apply_edits, prompt_messages, sse, sse_app

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


def _reply(*, leak: bool, send_code: bool) -> Any:
    async def reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
        original = (body.get("context") or {}).get("expression", "")
        parser, raw, shown, code = JsonObjectStream(), "", "", None
        try:
            async with httpx.AsyncClient() as client:
                async for name, piece in tool_arguments(client, body):
                    if name != "answer":
                        continue
                    raw += piece
                    for event in parser.feed(piece):
                        if isinstance(event, MemberDone) and event.key == "code_edits":
                            code = apply_edits(original, event.value)
                            if send_code:
                                yield sse("patch", {"source": code})
                        elif (
                            isinstance(event, StringDelta)
                            and event.key == "text_answer"
                            and not leak
                        ):
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
        yield sse("end", {"answer": shown, "source": code if send_code else None})

    return reply


app = sse_app(_reply(leak=False, send_code=True))
leaky_app = sse_app(_reply(leak=True, send_code=True))
dropped_code_app = sse_app(_reply(leak=False, send_code=False))
