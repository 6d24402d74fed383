"""What the example backends share: an SSE frame, code edits applied, one POST route."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

Reply = Callable[[dict[str, Any]], AsyncIterator[bytes]]


def sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def prompt_messages(body: dict[str, Any], prefill: str = "") -> list[dict[str, str]]:
    """The provider messages for a request: the user's code (if any) and message, then the
    prefill the answer should continue (if any)."""
    code = (body.get("context") or {}).get("expression", "")
    content = str(body.get("content", ""))
    messages = [{"role": "user", "content": f"My code:\n{code}\n\n{content}" if code else content}]
    if prefill:
        messages.append({"role": "assistant", "content": prefill})
    return messages


def apply_edits(code: str, edits: list[dict[str, Any]]) -> str:
    """``rewrite`` replaces the code; ``replace`` its first ``old_code`` (skipped if absent)."""
    for edit in edits:
        if edit.get("action") == "rewrite":
            code = edit.get("new_code", "")
        elif edit.get("old_code") and edit["old_code"] in code:
            code = code.replace(edit["old_code"], edit.get("new_code", ""), 1)
    return code


def sse_app(reply: Reply, path: str = "/messages") -> Starlette:
    """An app answering ``POST path`` (a JSON body) with the SSE stream ``reply`` yields."""

    async def handle(request: Request) -> StreamingResponse:
        return StreamingResponse(reply(await request.json()), media_type="text/event-stream")

    return Starlette(routes=[Route(path, handle, methods=["POST"])])
