"""google-generate: ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``; every event
is a ``GenerateContentResponse`` chunk (``candidates[].content.parts[]``), the last carrying
``finishReason``; no terminal event."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from streambench.providers.base import (
    Content,
    Cut,
    Delta,
    EventInfo,
    Frame,
    JsonEventsAPI,
    PromptParts,
    ToolCall,
    ToolCallPiece,
    dumps,
    error_message,
    last_user_and_prefill,
    sse,
)
from streambench.sse import SSEEvent

# How a functionCall's args object is read back as the JSON text of its input.
_AS_SENT: dict[str, Any] = {"ensure_ascii": False}


def _call_parts(c: Content) -> list[dict[str, Any]]:
    """A ``functionCall`` part per tool call of ``c``."""
    return [
        {"functionCall": {"name": call.name, "args": json.loads(call.arguments or "{}")}}
        for call in c.tool_calls
    ]


_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_STREAM_ACTION = ":streamGenerateContent"
_FINISH_KEYS = ("finishReason", "finishMessage", "safetyRatings")


class GoogleGenerate(JsonEventsAPI):
    name = "google-generate"
    provider = "google"
    sdk = "google-genai"
    default_model = "gemini-2.5-flash"
    base_url = "https://generativelanguage.googleapis.com"
    path = "/v1beta/models/{model}:streamGenerateContent?alt=sse"
    key_env = "GOOGLE_API_KEY"
    # one route for both actions: the model and the action share the last path segment
    routes = ("/v1beta/models/{target}", "/v1/models/{target}")
    id_prefix = "resp_"
    stop_reasons: ClassVar[dict[str, str]] = {
        "end_turn": "STOP",
        "max_tokens": "MAX_TOKENS",
        "refusal": "SAFETY",
    }

    def matches_url(self, host: str, segments: list[str], path: str) -> bool:
        last = segments[-1] if segments else ""
        return _STREAM_ACTION in last or ":generateContent" in last

    def matches_event(self, kind: str, payload: dict[str, Any]) -> bool:
        return "candidates" in payload

    def interpret_payload(self, ev: SSEEvent, payload: dict[str, Any], info: EventInfo) -> None:
        if "error" in payload:
            info.error = error_message(payload["error"])
        for candidate in payload.get("candidates") or []:
            for part in (candidate.get("content") or {}).get("parts") or []:
                if isinstance(part.get("text"), str) and part["text"]:
                    kind = "thinking" if part.get("thought") else "text"
                    info.pieces.append((kind, part["text"]))
                if "functionCall" in part:
                    args = (part["functionCall"] or {}).get("args") or {}
                    info.pieces.append(("tool_json", json.dumps(args, **_AS_SENT)))
            if candidate.get("finishReason"):
                info.stop_reason = candidate["finishReason"]
        block_reason = (payload.get("promptFeedback") or {}).get("blockReason")
        if block_reason:
            info.stop_reason = block_reason

    def tool_call_pieces(self, obj: dict[str, Any]) -> list[ToolCallPiece]:
        return [
            ToolCallPiece(None, call.name, call.arguments) for call in self.response_tool_calls(obj)
        ]

    def locate(self, obj: dict[str, Any]) -> Delta | None:
        candidates = obj.get("candidates")
        if not isinstance(candidates, list) or len(candidates) != 1:
            return None
        parts = (candidates[0].get("content") or {}).get("parts")
        if not isinstance(parts, list) or len(parts) != 1 or not isinstance(parts[0], dict):
            return None
        if not isinstance(parts[0].get("text"), str) or set(parts[0]) - {"text", "thought"}:
            return None
        thought = bool(parts[0].get("thought"))
        slot = ("google", candidates[0].get("index"), thought)
        path = ("candidates", 0, "content", "parts", 0, "text")
        return Delta(path, slot, "thinking" if thought else "text")

    def shape_piece(self, obj: dict[str, Any], first: bool, last: bool) -> None:
        if not last:
            for key in _FINISH_KEYS:
                obj["candidates"][0].pop(key, None)

    def carries_envelope(self, obj: dict[str, Any]) -> bool:
        return bool(obj["candidates"][0].get("finishReason") or obj.get("usageMetadata"))

    def keepalive(self) -> bytes | None:
        return None  # google sends none, and google-genai fails on an SSE comment

    def on_cut(self, obj: dict[str, Any], cut: Cut) -> None:
        obj["candidates"][0]["finishReason"] = cut.reason

    def after_cut(self, obj: dict[str, Any], cut: Cut) -> dict[str, Any] | None:
        return None if obj.get("candidates") else obj

    def http_error(self, status: int, retry_after_s: float | None) -> tuple[dict[str, str], Any]:
        state = _STATUS.get(status, "INTERNAL")
        message = "The model is overloaded. Please try again later." if status == 503 else state
        body = {"error": {"code": status, "message": message, "status": state}}
        return {"content-type": "application/json"}, body

    def error_event(self, sequence_number: int = 0) -> SSEEvent:
        error = {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
        return SSEEvent(data=dumps({"error": error}))

    def _chunk(self, c: Content, parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        usage = {
            "promptTokenCount": 25,
            "candidatesTokenCount": c.output_tokens,
            "totalTokenCount": 25 + c.output_tokens,
        }
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": c.model,
            "responseId": c.message_id,
        }

    def render(self, c: Content) -> list[Frame]:
        pieces: list[tuple[dict[str, Any], int]] = [
            ({"text": piece, "thought": True}, 1) for piece in c.thinking
        ]
        pieces += [({"text": piece}, 1) for piece in c.deltas]
        pieces += [(part, 1) for part in _call_parts(c)]
        if not pieces:
            pieces.append(({"text": ""}, 0))
        finish = self.stop_reasons.get(c.stop_reason or "", c.stop_reason) or "STOP"
        frames = []
        for i, (part, tokens) in enumerate(pieces):
            last = i == len(pieces) - 1
            frames.append(sse(self._chunk(c, [part], finish if last else None), tokens=tokens))
        return frames

    def response_tool_calls(self, body: Any) -> list[ToolCall]:
        """A streamed chunk and the whole response alike: each ``functionCall`` part whole."""
        candidates = body.get("candidates") if isinstance(body, dict) else None
        return [
            ToolCall(str(call.get("name") or ""), json.dumps(call.get("args") or {}, **_AS_SENT))
            for candidate in candidates or []
            if isinstance(candidate, dict)
            for part in (candidate.get("content") or {}).get("parts") or []
            if isinstance(part, dict) and isinstance(call := part.get("functionCall"), dict)
        ]

    def response_text(self, body: Any) -> str:
        candidates = body.get("candidates") if isinstance(body, dict) else None
        parts = [
            part
            for candidate in candidates or []
            if isinstance(candidate, dict)
            for part in (candidate.get("content") or {}).get("parts") or []
        ]
        return "".join(
            p["text"]
            for p in parts
            if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
        )

    def render_json(self, c: Content) -> dict[str, Any]:
        finish = self.stop_reasons.get(c.stop_reason or "", c.stop_reason) or "STOP"
        return self._chunk(c, [{"text": c.text}, *_call_parts(c)], finish)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key} if key else {}

    def build_body(
        self, request: dict[str, Any] | None, prompt: str | None, model: str | None
    ) -> dict[str, Any]:
        body = dict(request or {})
        body.pop("model", None)  # the model is in the URL
        if prompt is not None:
            body["contents"] = [{"role": "user", "parts": [{"text": prompt}]}]
        return body

    def read_prompt(self, body: dict[str, Any]) -> PromptParts:
        contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
        return last_user_and_prefill(contents, "parts")

    def is_streaming_request(self, path: str, body: dict[str, Any]) -> bool:
        return _STREAM_ACTION in path

    def model_of(self, path: str, body: dict[str, Any]) -> str | None:
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return last.partition(":")[0] or None


API = GoogleGenerate()
