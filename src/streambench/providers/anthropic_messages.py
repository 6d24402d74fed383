"""anthropic-messages: ``POST /v1/messages``, ``message_start`` ... ``message_stop``."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from streambench.providers.base import (
    REQUEST_ID,
    Content,
    Cut,
    Delta,
    EventInfo,
    Frame,
    JsonEventsAPI,
    Path,
    ToolCall,
    ToolCallPiece,
    ToolChoice,
    ToolDefinition,
    Unit,
    digest,
    dumps,
    error_message,
    split_deltas,
    sse,
    tool_choice,
)
from streambench.sse import SSEEvent

VERSION = "2023-06-01"
_DELTA_FIELDS = {
    "text_delta": "text",
    "input_json_delta": "partial_json",
    "thinking_delta": "thinking",
}
_DELTA_KINDS: dict[str, Any] = {
    "text_delta": "text",
    "input_json_delta": "tool_json",
    "thinking_delta": "thinking",
}
_BLOCK_KINDS = {"text": "text", "thinking": "thinking", "redacted_thinking": "thinking"}
_BLOCK_EVENTS = ("content_block_start", "content_block_delta", "content_block_stop")
_ERRORS = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per"
        " minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    ),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


class AnthropicMessages(JsonEventsAPI):
    name = "anthropic-messages"
    provider = "anthropic"
    sdk = "anthropic"
    default_model = "claude-sonnet-4-20250514"
    base_url = "https://api.anthropic.com"
    path = "/v1/messages"
    key_env = "ANTHROPIC_API_KEY"
    routes = ("/v1/messages",)
    id_prefix = "msg_01"
    stop_reasons: ClassVar[dict[str, str]] = {
        "end_turn": "end_turn",
        "max_tokens": "max_tokens",
        "refusal": "refusal",
    }

    def matches_url(self, host: str, segments: list[str], path: str) -> bool:
        return (
            bool(segments)
            and segments[-1] == "messages"
            and ("anthropic" in host or "v1" in segments)
        )

    def matches_event(self, kind: str, payload: dict[str, Any]) -> bool:
        return kind.startswith(("message_", "content_block_"))

    def interpret_payload(self, ev: SSEEvent, payload: dict[str, Any], info: EventInfo) -> None:
        kind = payload.get("type") or ev.event
        if kind == "content_block_delta":
            delta = payload.get("delta") or {}
            key = _DELTA_FIELDS.get(str(delta.get("type")))
            if key is not None:
                info.pieces.append((_DELTA_KINDS[delta["type"]], str(delta.get(key, ""))))
        elif kind == "message_delta":
            info.stop_reason = (payload.get("delta") or {}).get("stop_reason")
        elif kind == "error":
            info.error = error_message(payload.get("error", payload))

    def tool_call_pieces(self, obj: dict[str, Any]) -> list[ToolCallPiece]:
        kind = obj.get("type")
        index = str(obj.get("index"))
        block = obj.get("content_block") or {}
        # tool_use, server_tool_use, mcp_tool_use: every block whose input streams as JSON
        if kind == "content_block_start" and str(block.get("type")).endswith("tool_use"):
            return [ToolCallPiece(index, str(block.get("name") or ""), "")]
        delta = obj.get("delta") or {}
        if kind == "content_block_delta" and delta.get("type") == "input_json_delta":
            return [ToolCallPiece(index, None, str(delta.get("partial_json", "")))]
        return []

    def locate(self, obj: dict[str, Any]) -> Delta | None:
        delta = obj.get("delta")
        if obj.get("type") != "content_block_delta" or not isinstance(delta, dict):
            return None
        key = _DELTA_FIELDS.get(str(delta.get("type")))
        if key is None:
            return None
        return Delta(("delta", key), ("anthropic", obj.get("index")), _DELTA_KINDS[delta["type"]])

    def keepalive(self) -> bytes:
        return b'event: ping\ndata: {"type": "ping"}\n\n'

    def tool_call_ids(self, obj: dict[str, Any]) -> list[Path]:
        block = obj.get("content_block")
        if obj.get("type") != "content_block_start" or not isinstance(block, dict):
            return []
        return [("content_block", "id")] if str(block.get("type")).endswith("tool_use") else []

    def unit(self, obj: dict[str, Any]) -> Unit | None:
        index = obj.get("index")
        if obj.get("type") not in _BLOCK_EVENTS or not isinstance(index, int):
            return None
        kind = None
        if obj["type"] == "content_block_start":
            block_type = str((obj.get("content_block") or {}).get("type"))
            tool = "tool" if block_type.endswith("tool_use") else "other"
            kind = _BLOCK_KINDS.get(block_type, tool)
        return Unit(("anthropic", index), kind, index, obj["type"] == "content_block_start")

    def reindex(self, obj: dict[str, Any], moved: dict[int, int]) -> None:
        if obj.get("type") in _BLOCK_EVENTS and obj.get("index") in moved:
            obj["index"] = moved[obj["index"]]

    def after_cut(self, obj: dict[str, Any], cut: Cut) -> dict[str, Any] | None:
        kind = obj.get("type")
        if kind in _BLOCK_EVENTS and (obj.get("index") or 0) > (cut.slot[1] or 0):
            return None  # a block the answer no longer reaches
        if kind == "content_block_delta":
            return None
        if kind == "message_delta":
            obj.setdefault("delta", {})["stop_reason"] = cut.reason
        return obj

    def http_error(self, status: int, retry_after_s: float | None) -> tuple[dict[str, str], Any]:
        kind, message = _ERRORS.get(status, ("api_error", "Internal server error"))
        body = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": REQUEST_ID,
        }
        headers = {"content-type": "application/json", "request-id": REQUEST_ID}
        retryable = status in (408, 409, 429) or status >= 500
        headers["x-should-retry"] = "true" if retryable else "false"
        if status == 429:
            headers["anthropic-ratelimit-requests-limit"] = "50"
            headers["anthropic-ratelimit-requests-remaining"] = "0"
        return headers, body

    def error_event(self, sequence_number: int = 0) -> SSEEvent:
        data = {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": REQUEST_ID,
        }
        return SSEEvent(event="error", data=dumps(data))

    def render(self, c: Content) -> list[Frame]:
        usage = {
            "input_tokens": 25,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 1,
            "service_tier": "standard",
        }
        message = {
            "model": c.model,
            "id": c.message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        frames = [sse({"type": "message_start", "message": message}, "message_start")]
        blocks: list[tuple[dict[str, Any], str, list[str]]] = []
        if c.thinking:
            block = {"type": "thinking", "thinking": "", "signature": ""}
            blocks.append((block, "thinking_delta", c.thinking))
        if c.deltas or not (c.thinking or c.tool_calls):
            blocks.append(({"type": "text", "text": ""}, "text_delta", c.deltas))
        for i, call in enumerate(c.tool_calls):
            block = {
                "type": "tool_use",
                "id": c.call_id(i, "toolu_01"),
                "name": call.name,
                "input": {},
            }
            blocks.append((block, "input_json_delta", ["", *split_deltas(call.arguments)]))
        for index, (block, delta_type, pieces) in enumerate(blocks):
            start = {"type": "content_block_start", "index": index, "content_block": block}
            frames.append(sse(start, "content_block_start"))
            if index == 0:
                frames.append(sse('{"type": "ping"}', "ping"))
            for piece in pieces:
                delta = {"type": delta_type, _DELTA_FIELDS[delta_type]: piece}
                body = {"type": "content_block_delta", "index": index, "delta": delta}
                frames.append(sse(body, "content_block_delta", tokens=1 if piece else 0))
            if delta_type == "thinking_delta":
                signature = {"type": "signature_delta", "signature": digest(c.thinking, n=64)}
                body = {"type": "content_block_delta", "index": index, "delta": signature}
                frames.append(sse(body, "content_block_delta"))
            frames.append(sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
        stop = c.stop_reason or ("tool_use" if c.tool_calls else "end_turn")
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": c.output_tokens},
        }
        frames.append(sse(delta, "message_delta"))
        frames.append(sse({"type": "message_stop"}, "message_stop"))
        return frames

    def render_json(self, c: Content) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if c.deltas or not c.tool_calls:
            content.append({"type": "text", "text": c.text})
        for i, call in enumerate(c.tool_calls):
            block = {"type": "tool_use", "id": c.call_id(i, "toolu_01"), "name": call.name}
            content.append({**block, "input": json.loads(call.arguments)})
        return {
            "id": c.message_id,
            "type": "message",
            "role": "assistant",
            "model": c.model,
            "content": content,
            "stop_reason": "tool_use" if c.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": c.output_tokens},
        }

    def tool_fields(self, tool: ToolDefinition, forced: bool) -> dict[str, Any]:
        offered = {
            "name": tool.name,
            "description": tool.description,
            "input_schema": tool.input_schema,
        }
        choice = {"type": "tool", "name": tool.name} if forced else {"type": "auto"}
        return {"tools": [offered], "tool_choice": choice}

    def read_tools(self, body: dict[str, Any]) -> ToolChoice:
        tools = body.get("tools") if isinstance(body.get("tools"), list) else []
        offered = [
            (str(t["name"]), t.get("input_schema"))
            for t in tools
            if isinstance(t, dict) and t.get("name")
        ]
        choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
        forced = choice.get("name") if choice.get("type") == "tool" else None
        if choice.get("type") == "any" and len(offered) == 1:
            forced = offered[0][0]
        return tool_choice(offered, None if forced is None else str(forced))

    def response_text(self, body: Any) -> str:
        blocks = body.get("content") if isinstance(body, dict) else None
        return "".join(
            str(b.get("text", ""))
            for b in blocks or []
            if isinstance(b, dict) and b.get("type") == "text"
        )

    def response_tool_calls(self, body: Any) -> list[ToolCall]:
        blocks = body.get("content") if isinstance(body, dict) else None
        return [
            ToolCall(str(b.get("name", "")), dumps(b.get("input") or {}), b.get("id"))
            for b in blocks or []
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]

    def auth_headers(self, key: str) -> dict[str, str]:
        headers = {"anthropic-version": VERSION}
        return {**headers, "x-api-key": key} if key else headers

    def build_body(
        self, request: dict[str, Any] | None, prompt: str | None, model: str | None
    ) -> dict[str, Any]:
        body = super().build_body(request, prompt, model)
        body.setdefault("max_tokens", 1024)
        return body


API = AnthropicMessages()
