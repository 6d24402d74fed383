"""openai-chat: ``POST /v1/chat/completions``, ``chat.completion.chunk`` objects, then
``data: [DONE]``. Spoken by many providers (groq, mistral, deepseek, openrouter ...)."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from streambench.providers.base import (
    CREATED,
    REQUEST_ID,
    Content,
    ContentKind,
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

SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for gpt-4o in organization org-streambench on requests per min"
        " (RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms.",
    ),
    500: ("server_error", None, SERVER_ERROR),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_THINKING_KEYS = ("reasoning_content", "reasoning")


def openai_http_error(status: int) -> tuple[dict[str, str], Any]:
    """OpenAI's error response (shared by chat and responses)."""
    kind, code, message = _ERRORS.get(status, _ERRORS[500])
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = {"content-type": "application/json", "x-request-id": REQUEST_ID}
    if status == 429:
        headers["x-ratelimit-limit-requests"] = "500"
        headers["x-ratelimit-remaining-requests"] = "0"
        headers["x-ratelimit-reset-requests"] = "120ms"
    return headers, body


def _chat_content(content: Any, info: EventInfo, kind: ContentKind = "text") -> None:
    """``delta.content``: a string, or (Mistral) a list of text / thinking parts."""
    if isinstance(content, str):
        if content:
            info.pieces.append((kind, content))
        return
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "thinking":
            _chat_content(part.get("thinking"), info, "thinking")
        else:
            _chat_content(part.get("text"), info, kind)


class OpenAIChat(JsonEventsAPI):
    name = "openai-chat"
    provider = "openai"
    sdk = "openai"
    default_model = "gpt-4o-2024-08-06"
    base_url = "https://api.openai.com"
    path = "/v1/chat/completions"
    key_env = "OPENAI_API_KEY"
    routes = ("/v1/chat/completions", "/chat/completions")
    id_prefix = "chatcmpl-"
    stop_reasons: ClassVar[dict[str, str]] = {"end_turn": "stop", "max_tokens": "length"}
    refusal_key = "refusal"

    def matches_url(self, host: str, segments: list[str], path: str) -> bool:
        return path.rstrip("/").endswith("/chat/completions")

    def matches_event(self, kind: str, payload: dict[str, Any]) -> bool:
        return "choices" in payload

    def interpret(self, ev: SSEEvent) -> EventInfo:
        if ev.data.strip() == "[DONE]":
            return EventInfo()
        return super().interpret(ev)

    def interpret_payload(self, ev: SSEEvent, payload: dict[str, Any], info: EventInfo) -> None:
        if "error" in payload:
            info.error = error_message(payload["error"])
        for choice in payload.get("choices") or []:
            delta = choice.get("delta") or {}
            for key in _THINKING_KEYS:
                if isinstance(delta.get(key), str) and delta[key]:
                    info.pieces.append(("thinking", delta[key]))
            _chat_content(delta.get("content"), info)
            for call in delta.get("tool_calls") or []:
                arguments = (call.get("function") or {}).get("arguments")
                if arguments:
                    info.pieces.append(("tool_json", str(arguments)))
            if choice.get("finish_reason"):
                info.stop_reason = choice["finish_reason"]

    def tool_call_pieces(self, obj: dict[str, Any]) -> list[ToolCallPiece]:
        pieces: list[ToolCallPiece] = []
        for choice in obj.get("choices") or []:
            for call in (choice.get("delta") or {}).get("tool_calls") or []:
                function = call.get("function") or {}
                name = function.get("name")
                pieces.append(
                    ToolCallPiece(
                        str(call.get("index", 0)),
                        None if name is None else str(name),
                        str(function.get("arguments") or ""),
                    )
                )
        return pieces

    def locate(self, obj: dict[str, Any]) -> Delta | None:
        choices = obj.get("choices")
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
            return None
        delta = choices[0].get("delta")
        if not isinstance(delta, dict):
            return None
        found: list[Delta] = []
        index = choices[0].get("index")
        for key in ("content", *_THINKING_KEYS):
            if isinstance(delta.get(key), str) and delta[key]:
                kind: ContentKind = "text" if key == "content" else "thinking"
                found.append(Delta(("choices", 0, "delta", key), ("chat", index, key), kind))
        calls = delta.get("tool_calls")
        if isinstance(calls, list) and calls:
            arguments = (calls[0].get("function") or {}).get("arguments")
            if len(calls) != 1 or not isinstance(arguments, str):
                return None
            if arguments:
                path: Path = ("choices", 0, "delta", "tool_calls", 0, "function", "arguments")
                slot = ("chat", index, "tool", calls[0].get("index"))
                found.append(Delta(path, slot, "tool_json"))
        return found[0] if len(found) == 1 else None

    def separate(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """A chunk carrying several tool calls as one chunk per call: the role on the first,
        finish_reason and usage on the last."""
        choices = obj.get("choices")
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
            return []
        delta = choices[0].get("delta")
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        if not isinstance(calls, list) or len(calls) < 2 or set(delta) - {"role", "tool_calls"}:
            return []
        parts: list[dict[str, Any]] = []
        for i, call in enumerate(calls):
            part = copy.deepcopy(obj)
            part["choices"][0]["delta"]["tool_calls"] = [call]
            if i:
                part["choices"][0]["delta"].pop("role", None)
            if i < len(calls) - 1:
                part["choices"][0]["finish_reason"] = None
                if part.get("usage") is not None:
                    part["usage"] = None
            parts.append(part)
        return parts

    def shape_piece(self, obj: dict[str, Any], first: bool, last: bool) -> None:
        choice = obj["choices"][0]
        if not first:
            choice["delta"].pop("role", None)
            for call in choice["delta"].get("tool_calls") or []:
                call.pop("id", None)
                call.pop("type", None)
                (call.get("function") or {}).pop("name", None)
            if "logprobs" in choice:
                choice["logprobs"] = None
        if not last:
            if "finish_reason" in choice:
                choice["finish_reason"] = None
            if obj.get("usage") is not None:
                obj["usage"] = None

    def carries_envelope(self, obj: dict[str, Any]) -> bool:
        choice = obj["choices"][0]
        calls = choice["delta"].get("tool_calls") or []
        return bool(
            choice["delta"].get("role")
            or choice.get("finish_reason")
            or obj.get("usage")
            or any(call.get("id") for call in calls)
        )

    def tool_call_ids(self, obj: dict[str, Any]) -> list[Path]:
        paths: list[Path] = []
        for c, choice in enumerate(obj.get("choices") or []):
            calls = (
                (choice.get("delta") or {}).get("tool_calls") if isinstance(choice, dict) else None
            )
            for k, call in enumerate(calls or []):
                if isinstance(call, dict) and call.get("id"):
                    paths.append(("choices", c, "delta", "tool_calls", k, "id"))
        return paths

    def unit(self, obj: dict[str, Any]) -> Unit | None:
        """A choice's content, its reasoning, or one of its tool calls (by ``index``)."""
        where = self.locate(obj)
        choices = obj.get("choices")
        if where is None and isinstance(choices, list) and len(choices) == 1:
            calls = (choices[0].get("delta") or {}).get("tool_calls")
            if isinstance(calls, list) and len(calls) == 1 and calls[0].get("id"):
                index = choices[0].get("index")  # a tool call's opening chunk, arguments ""
                return Unit(("chat", index, "tool", calls[0].get("index")), "tool", opens=True)
        if where is None:
            return None
        calls = obj["choices"][0]["delta"].get("tool_calls") or [{}]
        opens = where.kind == "tool_json" and bool(calls[0].get("id"))
        return Unit(where.slot, "tool" if where.kind == "tool_json" else where.kind, opens=opens)

    def refuse(self, obj: dict[str, Any], where: Delta, piece: str) -> None:
        delta = obj["choices"][0]["delta"]
        delta.pop(str(where.path[-1]), None)
        delta["refusal"] = piece

    def refused(
        self, obj: dict[str, Any], said: dict[tuple[Any, ...], str], events: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            return obj
        choice = choices[0]
        if (choice.get("delta") or {}).get("tool_calls"):
            return None  # a refusal carries no tool calls
        if choice.get("finish_reason"):
            choice["finish_reason"] = "stop"
        return obj

    def on_cut(self, obj: dict[str, Any], cut: Cut) -> None:
        choice = obj["choices"][0]
        if choice.get("finish_reason"):
            choice["finish_reason"] = cut.reason

    def after_cut(self, obj: dict[str, Any], cut: Cut) -> dict[str, Any] | None:
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices:
            return obj  # the usage chunk
        choice = choices[0]
        if choice.get("finish_reason"):
            choice["finish_reason"] = cut.reason
            choice["delta"] = {}
            return obj
        delta = choice.get("delta") or {}
        carries = any(delta.get(k) for k in ("content", "tool_calls", "refusal", *_THINKING_KEYS))
        return None if carries else obj

    def http_error(self, status: int, retry_after_s: float | None) -> tuple[dict[str, str], Any]:
        return openai_http_error(status)

    def error_event(self, sequence_number: int = 0) -> SSEEvent:
        error = {"message": SERVER_ERROR, "type": "server_error", "param": None, "code": None}
        return SSEEvent(data=dumps({"error": error}))

    def render(self, c: Content) -> list[Frame]:
        def chunk(delta: dict[str, Any], finish: str | None = None, tokens: int = 0) -> Frame:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse(
                {
                    "id": c.message_id,
                    "object": "chat.completion.chunk",
                    "created": CREATED,
                    "model": c.model,
                    "service_tier": "default",
                    "system_fingerprint": "fp_" + digest(c.model, n=10),
                    "choices": [choice],
                    "usage": None,
                },
                tokens=tokens,
            )

        frames = [chunk({"role": "assistant", "content": "", "refusal": None})]
        frames += [chunk({"reasoning_content": piece}, tokens=1) for piece in c.thinking]
        frames += [chunk({"content": piece}, tokens=1) for piece in c.deltas]
        for i, call in enumerate(c.tool_calls):
            function = {"name": call.name, "arguments": ""}
            head = {
                "index": i,
                "id": c.call_id(i, "call_"),
                "type": "function",
                "function": function,
            }
            frames.append(chunk({"tool_calls": [head]}))
            for piece in split_deltas(call.arguments):
                part = {"index": i, "function": {"arguments": piece}}
                frames.append(chunk({"tool_calls": [part]}, tokens=1))
        finish = c.stop_reason or ("tool_calls" if c.tool_calls else "stop")
        frames.append(chunk({}, finish))
        usage = {
            "id": c.message_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": c.model,
            "choices": [],
            "usage": {
                "prompt_tokens": 25,
                "completion_tokens": c.output_tokens,
                "total_tokens": 25 + c.output_tokens,
            },
        }
        frames.append(sse(usage))
        frames.append(sse("[DONE]"))
        return frames

    def render_json(self, c: Content) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": c.text if c.deltas or not c.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if c.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.call_id(i, "call_"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for i, call in enumerate(c.tool_calls)
            ]
        finish = "tool_calls" if c.tool_calls else "stop"
        return {
            "id": c.message_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": c.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": 25,
                "completion_tokens": c.output_tokens,
                "total_tokens": 25 + c.output_tokens,
            },
            "service_tier": "default",
        }

    def tool_fields(self, tool: ToolDefinition, forced: bool) -> dict[str, Any]:
        function = {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.input_schema,
        }
        choice: Any = {"type": "function", "function": {"name": tool.name}} if forced else "auto"
        return {"tools": [{"type": "function", "function": function}], "tool_choice": choice}

    def read_tools(self, body: dict[str, Any]) -> ToolChoice:
        tools = body.get("tools") if isinstance(body.get("tools"), list) else []
        functions = [t["function"] for t in tools if isinstance(t, dict) and "function" in t]
        offered = [
            (str(f["name"]), f.get("parameters"))
            for f in functions
            if isinstance(f, dict) and f.get("name")
        ]
        choice = body.get("tool_choice")
        forced = None
        if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            forced = choice["function"].get("name")
        elif choice == "required" and len(offered) == 1:
            forced = offered[0][0]
        return tool_choice(offered, None if forced is None else str(forced))

    def response_text(self, body: Any) -> str:
        choices = body.get("choices") if isinstance(body, dict) else None
        messages = [c.get("message") for c in choices or [] if isinstance(c, dict)]
        return "".join(
            m["content"]
            for m in messages
            if isinstance(m, dict) and isinstance(m.get("content"), str)
        )

    def response_tool_calls(self, body: Any) -> list[ToolCall]:
        choices = body.get("choices") if isinstance(body, dict) else None
        calls = []
        for choice in choices or []:
            message = choice.get("message") if isinstance(choice, dict) else None
            for call in (message or {}).get("tool_calls") or []:
                function = call.get("function") or {}
                name, arguments = str(function.get("name", "")), str(function.get("arguments", ""))
                calls.append(ToolCall(name, arguments, call.get("id")))
        return calls


API = OpenAIChat()
