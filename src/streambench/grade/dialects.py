"""Output dialects: a SUT's SSE events -> normalised UI events the client model understands.

``streambench`` is our wire format (docs/wire-format.md); ``anthropic`` is Anthropic-shaped
output (thinking deltas as status, text deltas as text, a custom ``changes`` event: what
apollo emits); ``openai-chat`` is chat-completions chunks (``data: [DONE]`` ends the stream).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streambench.errors import SpecError

TERMINAL_KINDS = frozenset({"done", "error"})


@dataclass(frozen=True)
class UIEvent:
    """One thing the browser client reacts to, at ``t_ms`` since the request.

    kind: ``status`` (text = the status line), ``changes`` (code = code or YAML),
    ``text`` (text = a streamed delta), ``done`` (text = final content or None when the
    dialect has none, code = final code/YAML), ``error`` (text = partial content),
    ``meta`` (thread/user/anything else the UI ignores).
    """

    t_ms: float
    kind: str
    text: str | None = None
    code: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS


DialectParser = Callable[[float, str, str], list[UIEvent]]


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _changes_code(payload: dict[str, Any]) -> str | None:
    code = payload.get("code")
    return code if code is not None else payload.get("yaml")


def parse_streambench(t_ms: float, event: str, data: str) -> list[UIEvent]:
    payload = _json(data)
    body = payload if isinstance(payload, dict) else {}
    if event == "status":
        return [UIEvent(t_ms, "status", text=str(body.get("message", "")), data=body)]
    if event == "changes":
        return [UIEvent(t_ms, "changes", code=_changes_code(body), data=body)]
    if event == "chunk":
        return [UIEvent(t_ms, "text", text=str(body.get("content", "")), data=body)]
    if event == "done":
        content = body.get("content")
        return [UIEvent(t_ms, "done", text=content, code=_changes_code(body), data=body)]
    if event == "error":
        partial = body.get("partial_content")
        return [UIEvent(t_ms, "error", text=partial or "", data=body)]
    return [UIEvent(t_ms, "meta", text=event, data=body)]


def parse_anthropic(t_ms: float, event: str, data: str) -> list[UIEvent]:
    payload = _json(data)
    body = payload if isinstance(payload, dict) else {}
    kind = event if event not in ("", "message") else str(body.get("type", ""))
    if kind == "changes":
        return [UIEvent(t_ms, "changes", code=_changes_code(body), data=body)]
    if kind == "content_block_delta":
        delta = body.get("delta") or {}
        if delta.get("type") == "text_delta":
            return [UIEvent(t_ms, "text", text=str(delta.get("text", "")), data=body)]
        if delta.get("type") == "thinking_delta":
            return [UIEvent(t_ms, "status", text=str(delta.get("thinking", "")), data=body)]
    if kind == "message_stop":
        return [UIEvent(t_ms, "done", data=body)]
    if kind == "error":
        error = body.get("error") or {}
        return [UIEvent(t_ms, "error", text=None, data={"message": error.get("message", "")})]
    return [UIEvent(t_ms, "meta", text=kind, data=body)]


def parse_openai_chat(t_ms: float, event: str, data: str) -> list[UIEvent]:
    if data.strip() == "[DONE]":
        return [UIEvent(t_ms, "done")]
    payload = _json(data)
    body = payload if isinstance(payload, dict) else {}
    if event == "changes":
        return [UIEvent(t_ms, "changes", code=_changes_code(body), data=body)]
    if "error" in body:
        error = body["error"] if isinstance(body["error"], dict) else {"message": body["error"]}
        return [UIEvent(t_ms, "error", text=None, data={"message": error.get("message", "")})]
    events: list[UIEvent] = []
    for choice in body.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("reasoning_content"):
            events.append(UIEvent(t_ms, "status", text=str(delta["reasoning_content"])))
        if delta.get("content"):
            events.append(UIEvent(t_ms, "text", text=str(delta["content"])))
    return events or [UIEvent(t_ms, "meta", text=event, data=body)]


DIALECTS: dict[str, DialectParser] = {
    "streambench": parse_streambench,
    "anthropic": parse_anthropic,
    "openai-chat": parse_openai_chat,
}


def dialect_parser(name: str) -> DialectParser:
    try:
        return DIALECTS[name]
    except KeyError:
        known = ", ".join(DIALECTS)
        raise SpecError(f"dialect {name!r}: unknown (known: {known})") from None
