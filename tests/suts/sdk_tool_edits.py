"""A job-code backend on the official ``anthropic.AsyncAnthropic`` client that gets the edits as
a tool call, as the reference's tool changes-first design does: the model must call
``edit_job_code`` with ``{"code_edits": [...], "text_answer": "..."}``. Answered in the
streambench wire format: ``changes``, the ``text_answer`` as ``chunk`` events, ``done``.

- ``app``: parses the tool input as it streams (``streambench.answer``) and sends ``changes``
  the moment its ``code_edits`` member is complete;
- ``block_stop_app``, a user's bug: waits for the SDK to report the tool block complete
  (``content_block_stop``), while the ``text_answer`` of the same block is already streaming,
  so the user reads the explanation before the code arrives;
- ``eager_app``, a user's bug: shows the code the moment the SDK's partial snapshot of the tool
  input (``input_json`` events) holds a first edit, so the user sees an edit applied before its
  ``new_code`` (or the next edit) has arrived; ``done`` then carries the complete code;
- ``first_edit_app``, a user's bug: applies only the first of ``code_edits`` (written when the
  model always sent one edit), so an answer of several edits ends with the wrong code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
from tests.suts._starlette import apply_edits as apply_all
from tests.suts._starlette import sse, sse_app

from streambench.answer import JsonObjectStream, MemberDone, StringDelta

MODEL = "claude-sonnet-4-20250514"
TOOL = {
    "name": "edit_job_code",
    "description": "Apply the answer to the user's editor.",
    "input_schema": {
        "type": "object",
        "properties": {"code_edits": {"type": "array"}, "text_answer": {"type": "string"}},
        "required": ["code_edits", "text_answer"],
    },
}


def _reply(*, when: str, first_edit_only: bool = False) -> Any:
    """``when`` the code is sent: ``complete`` (its member parsed), ``block_stop``, ``eager``."""

    def apply_edits(code: str, edits: list[Any]) -> str:
        return apply_all(code, edits[:1] if first_edit_only else edits)

    async def reply(body: dict[str, Any]) -> AsyncIterator[bytes]:
        code = (body.get("context") or {}).get("expression", "")
        messages = [{"role": "user", "content": f"{code}\n\n{body['content']}"}]
        client = anthropic.AsyncAnthropic(max_retries=0)
        parser, shown, sent = JsonObjectStream(), "", False
        try:
            async with client.messages.stream(
                model=MODEL,
                max_tokens=4096,
                messages=messages,  # type: ignore[arg-type]
                tools=[TOOL],  # type: ignore[list-item]
                tool_choice={"type": "tool", "name": "edit_job_code"},
            ) as stream:
                async for event in stream:
                    if event.type == "input_json":
                        edits = (event.snapshot or {}).get("code_edits") or []
                        if when == "eager" and edits and not sent:
                            sent = True
                            yield sse("changes", {"code": apply_edits(code, edits)})
                        for item in parser.feed(event.partial_json):
                            if isinstance(item, StringDelta) and item.key == "text_answer":
                                shown += item.text
                                yield sse("chunk", {"content": item.text})
                            elif (
                                isinstance(item, MemberDone)
                                and item.key == "code_edits"
                                and when == "complete"
                            ):
                                sent = True
                                yield sse("changes", {"code": apply_edits(code, item.value)})
                    elif event.type == "content_block_stop" and when == "block_stop":
                        block = event.content_block
                        if block.type == "tool_use":
                            edits = block.input.get("code_edits") or []  # type: ignore[union-attr]
                            yield sse("changes", {"code": apply_edits(code, edits)})
                final = await stream.get_final_message()
        except anthropic.APIError as exc:
            yield sse("error", {"partial_content": shown, "message": str(exc)})
            return
        tool_input = next(b.input for b in final.content if b.type == "tool_use")
        new_code = apply_edits(code, tool_input.get("code_edits") or [])  # type: ignore[union-attr]
        yield sse("done", {"content": shown, "code": new_code, "provider": "anthropic"})

    return reply


app = sse_app(_reply(when="complete"))
block_stop_app = sse_app(_reply(when="block_stop"))
eager_app = sse_app(_reply(when="eager"))
first_edit_app = sse_app(_reply(when="complete", first_edit_only=True))
