"""toy-chat: a made-up SSE API, added to streambench the way a new provider API is: this one
module on ``streambench.providers``' path and nothing else (tests/test_provider_module.py).

Requests go to ``/v1/toy/chat`` with ``{"model", "messages", "stream": true}``; the stream is
``event: token`` events ``{"token": "..."}``, a tool call as ``event: call`` events
``{"call": 0, "name": "...", "args": "..."}`` (the name on the first, the input JSON in pieces),
and an ``event: end`` ``{"reason": "stop"}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from streambench.providers.base import (
    Content,
    Delta,
    EventInfo,
    Frame,
    JsonEventsAPI,
    ToolCallPiece,
    split_deltas,
    sse,
)
from streambench.sse import SSEEvent


class ToyChat(JsonEventsAPI):
    name: ClassVar[str] = "toy-chat"
    provider: ClassVar[str] = "toy"
    default_model: ClassVar[str] = "toy-1"
    base_url: ClassVar[str] = "https://api.toy.example"
    path: ClassVar[str] = "/v1/toy/chat"
    key_env: ClassVar[str | None] = "TOY_API_KEY"
    routes: ClassVar[tuple[str, ...]] = ("/v1/toy/chat",)
    id_prefix: ClassVar[str] = "toy_"
    stop_reasons: ClassVar[dict[str, str]] = {"end_turn": "stop", "max_tokens": "length"}

    def matches_url(self, host: str, segments: list[str], path: str) -> bool:
        return segments[-2:] == ["toy", "chat"]

    def matches_event(self, kind: str, payload: dict[str, Any]) -> bool:
        return kind in ("token", "call", "end") and bool({"token", "call", "reason"} & set(payload))

    def interpret_payload(self, ev: SSEEvent, payload: dict[str, Any], info: EventInfo) -> None:
        if isinstance(payload.get("token"), str):
            info.pieces.append(("text", payload["token"]))
        if isinstance(payload.get("args"), str):
            info.pieces.append(("tool_json", payload["args"]))
        if payload.get("reason"):
            info.stop_reason = str(payload["reason"])

    def tool_call_pieces(self, obj: dict[str, Any]) -> list[ToolCallPiece]:
        if "call" not in obj:
            return []
        name = obj.get("name")
        return [ToolCallPiece(str(obj["call"]), name and str(name), str(obj.get("args", "")))]

    def locate(self, obj: dict[str, Any]) -> Delta | None:
        return Delta(("token",), ()) if isinstance(obj.get("token"), str) else None

    def error_event(self, sequence_number: int = 0) -> SSEEvent:
        return SSEEvent(event="end", data='{"reason": "error"}')

    def render(self, content: Content) -> list[Frame]:
        frames = [sse({"token": piece}, "token", tokens=1) for piece in content.deltas]
        for index, call in enumerate(content.tool_calls):
            frames.append(sse({"call": index, "name": call.name, "args": ""}, "call"))
            pieces = split_deltas(call.arguments)
            frames += [sse({"call": index, "args": p}, "call", tokens=1) for p in pieces]
        return [*frames, sse({"reason": content.stop_reason or "stop"}, "end")]

    def render_json(self, content: Content) -> dict[str, Any]:
        return {"id": content.message_id, "text": content.text}


API = ToyChat()
