"""An Apollo-style job_chat backend on tool calls (OpenFn apollo, current form).

It reads the Anthropic stream with httpx, passes the Anthropic-shaped events through to the
client, sends a custom ``changes`` event when the ``suggest_code`` tool's input is complete,
and closes with a ``complete`` event carrying the final response and suggested code (graded
with ``--dialect apollo``). ``app`` holds the text back until the changes are out (apollo
#407's order); the bugs, each an app of its own:

- ``text_first_app``: streams the text as it arrives, the changes after it (text before changes);
- ``code_in_complete_app``: no ``changes`` event, the code only in ``complete`` (today's Apollo).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx

from streambench.sse import SSEDecoder

from ._starlette import apply_edits, prompt_messages, sse, sse_app

TOOL = "suggest_code"


def _reply(*, hold_text: bool, send_changes: bool) -> Any:
    async def reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
        original = (body.get("context") or {}).get("expression", "")
        text: list[str] = []  # every text delta upstream sent
        shown: list[str] = []  # the part of it the client has been sent
        held: list[tuple[bytes, str]] = []
        tool_blocks: dict[int, list[str]] = {}
        code: str | None = None
        holding = hold_text
        # over HTTP, streambench points ANTHROPIC_BASE_URL at its replay host
        base = os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com")
        async with (
            httpx.AsyncClient() as client,
            client.stream(
                "POST",
                f"{base}/v1/messages",
                json={"stream": True, "messages": prompt_messages(body)},
            ) as response,
        ):
            decoder = SSEDecoder()
            async for data in response.aiter_raw():
                for ev in decoder.feed(data):
                    event = json.loads(ev.data)
                    kind = event.get("type")
                    if kind == "error":
                        message = (event.get("error") or {}).get("message", "upstream error")
                        yield sse("error", {"message": message, "partial_content": "".join(shown)})
                        return
                    block = event.get("content_block") or {}
                    if kind == "content_block_start" and block.get("type") == "tool_use":
                        tool_blocks[event["index"]] = []
                    delta = event.get("delta") or {}
                    if delta.get("type") == "input_json_delta":
                        tool_blocks[event["index"]].append(delta.get("partial_json", ""))
                    if kind == "content_block_stop" and event["index"] in tool_blocks:
                        tool_input = json.loads("".join(tool_blocks[event["index"]]) or "{}")
                        code = apply_edits(original, tool_input.get("code_edits", []))
                        if send_changes:
                            yield sse("changes", {"code": code})
                        for out, piece in held:
                            shown.append(piece)
                            yield out
                        held, holding = [], False
                    out = sse(kind, event)
                    if delta.get("type") != "text_delta":
                        yield out
                        continue
                    piece = delta.get("text", "")
                    text.append(piece)
                    if holding:
                        held.append((out, piece))
                    else:
                        shown.append(piece)
                        yield out
        for out, _ in held:
            yield out
        yield sse("complete", {"response": "".join(text), "suggested_code": code})

    return reply


app = sse_app(_reply(hold_text=True, send_changes=True))
text_first_app = sse_app(_reply(hold_text=False, send_changes=True))
code_in_complete_app = sse_app(_reply(hold_text=True, send_changes=False))
