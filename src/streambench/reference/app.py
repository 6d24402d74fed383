"""The reference server: ``POST /messages`` streams the ``streambench`` SSE dialect.

Event order (docs/wire-format.md): ``thread``, ``user``, ``status``*, ``changes``?, ``chunk``*,
then exactly one of ``done`` (the persisted assistant row) or ``error``. Without
``Accept: text/event-stream`` the same run is answered as one JSON body (skytwin #151).

Run it with ``streambench reference-server`` or any ASGI server:
``uvicorn --factory streambench.reference.app:create_app``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from streambench.answer import MODES, ORDERS
from streambench.record.redact import Redactor, make_config
from streambench.reference.assistant import (
    Assistant,
    AssistantRequest,
    Changes,
    Failure,
    Reply,
    Status,
    Text,
)
from streambench.reference.chain import LLMClient
from streambench.reference.config import ReferenceConfig
from streambench.reference.store import Store, StoreError

WireEvent = tuple[str, dict[str, Any]]


class BadRequest(Exception):
    """The request body is not a valid message request; the message names the field."""


@dataclass(frozen=True)
class MessageRequest:
    content: str
    mode: str
    expression: str
    thread_id: str | None
    order: str
    seed: int | None


def parse_message_request(body: Any, default_order: str = "changes_first") -> MessageRequest:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    content = body.get("content")
    if not isinstance(content, str) or not content.strip():
        raise BadRequest("content: must be a non-empty string")
    mode = body.get("mode") or "chat"
    if mode not in MODES:
        raise BadRequest(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    order = body.get("order") or default_order
    if order not in ORDERS:
        raise BadRequest(f"order: {order!r} is not one of {', '.join(ORDERS)}")
    context = body.get("context") or {}
    expression = context.get("expression") if isinstance(context, dict) else None
    if expression is not None and not isinstance(expression, str):
        raise BadRequest("context.expression: must be a string")
    thread_id = body.get("thread_id")
    if thread_id is not None and not isinstance(thread_id, str):
        raise BadRequest("thread_id: must be a string")
    for name, value in (("content", content), ("context.expression", expression),
                        ("thread_id", thread_id)):  # fmt: skip
        if value is not None and not _encodable(value):
            raise BadRequest(f"{name}: not valid Unicode (a lone surrogate)")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise BadRequest("seed: must be an integer")
    return MessageRequest(content, mode, expression or "", thread_id, order, seed)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sse_frame(event: str, data: dict[str, Any]) -> bytes:
    # json.dumps escapes newlines, so every payload is exactly one data line.
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class EventStreamResponse(StreamingResponse):
    """Watches for the client's disconnect while streaming, whatever the ASGI spec version.

    Starlette relies on a failed send under ASGI 2.4, which never comes while the upstream is
    silent; cancelling the stream on ``http.disconnect`` closes the upstream response at once.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def stream() -> None:
                await self.stream_response(send)
                group.cancel_scope.cancel()

            group.start_soon(stream)
            await self.listen_for_disconnect(receive)
            group.cancel_scope.cancel()


class ReferenceService:
    def __init__(self, config: ReferenceConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.providers = config.build_providers()
        # Upstream error text can echo the key back: never forward it to the client.
        self.redactor = Redactor(make_config(patterns=map(re.escape, config.api_keys())))

    async def post_message(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "request body is not valid JSON"}, status_code=400)
        except RecursionError:
            return JSONResponse({"error": "request body is nested too deeply"}, status_code=400)
        try:
            message = parse_message_request(body, self.config.default_order)
        except BadRequest as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if message.thread_id is not None and not self.store.thread_exists(message.thread_id):
            return JSONResponse({"error": f"thread_id: no thread {message.thread_id!r}"}, 404)
        try:
            is_new = message.thread_id is None
            thread_id = message.thread_id or self.store.create_thread()
            history = [
                {"role": row["role"], "content": row["content"]}
                for row in self.store.messages(thread_id)
            ]
            user_row = self.store.add_user_message(thread_id, message.content)
        except StoreError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)
        events = self.message_events(message, thread_id, is_new, user_row, history)
        if "text/event-stream" in request.headers.get("accept", ""):
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return EventStreamResponse(
                _encoded(events), media_type="text/event-stream", headers=headers
            )
        return await _json_answer(events)

    async def get_messages(self, request: Request) -> Response:
        thread_id = request.path_params["thread_id"]
        if not self.store.thread_exists(thread_id):
            return JSONResponse({"error": f"no thread {thread_id!r}"}, status_code=404)
        return JSONResponse({"thread_id": thread_id, "messages": self.store.messages(thread_id)})

    async def message_events(
        self,
        message: MessageRequest,
        thread_id: str,
        is_new: bool,
        user_row: dict[str, Any],
        history: list[dict[str, str]],
    ) -> AsyncIterator[WireEvent]:
        """The wire events of one request, in order (the SSE and JSON answers share them)."""
        yield "thread", {"id": thread_id, "is_new": is_new}
        yield "user", user_row
        request = AssistantRequest(
            content=message.content,
            mode=message.mode,  # validated by parse_message_request
            expression=message.expression,
            order=message.order,
            seed=self.config.seed if message.seed is None else message.seed,
            history=history,
        )
        async with self.config.http_client() as http:
            llm = LLMClient(self.providers, http, self.config.max_retry_wait_s)
            assistant = Assistant(llm, self.config.max_tokens, self.config.structured)
            async with aclosing(assistant.reply_stream(request)) as replies:
                async for event in replies:
                    if isinstance(event, Status):
                        yield "status", {"message": event.message}
                    elif isinstance(event, Changes):
                        yield "changes", event.payload
                    elif isinstance(event, Text):
                        yield "chunk", {"content": event.content}
                    elif isinstance(event, Failure):
                        yield (
                            "error",
                            {
                                "partial_content": event.partial_content,
                                "message": self.redactor.text(event.message),
                            },
                        )
                    elif isinstance(event, Reply):
                        yield "done", self._persist_reply(thread_id, event)

    def _persist_reply(self, thread_id: str, reply: Reply) -> dict[str, Any]:
        fields = {
            "code": reply.code,
            "yaml": reply.yaml,
            "provider": reply.provider,
            "model": reply.model,
            "latency_ms": round(reply.latency_ms, 3),
        }
        try:
            row = self.store.add_assistant_message(thread_id, reply.content, **fields)
        except StoreError:
            # The reply was shown; losing the audit row must not turn it into an error.
            row = {"id": None, "thread_id": thread_id, "role": "assistant"}
            row |= {"content": reply.content, **fields, "created_at": None}
            return {**row, "persist_failed": True}
        return {**row, "persist_failed": False}


async def _encoded(events: AsyncIterator[WireEvent]) -> AsyncIterator[bytes]:
    async with aclosing(events):
        async for name, data in events:
            yield sse_frame(name, data)


async def _json_answer(events: AsyncIterator[WireEvent]) -> JSONResponse:
    """The backward-compatible answer: the same run collected into one JSON body."""
    answer: dict[str, Any] = {"statuses": [], "changes": None}
    keys = {"thread": "thread", "user": "user_message", "done": "assistant_message"}
    async with aclosing(events):
        async for name, data in events:
            if name == "status":
                answer["statuses"].append(data["message"])
            elif name == "chunk":
                continue
            elif name == "error":
                answer["error"] = data["message"]
                answer["partial_content"] = data["partial_content"]
            else:
                answer[keys.get(name, name)] = data
    return JSONResponse(answer, status_code=502 if "error" in answer else 200)


def create_app(config: ReferenceConfig | None = None) -> Starlette:
    """The ASGI app; with no argument it reads the environment (an ASGI factory)."""
    config = config if config is not None else ReferenceConfig.from_env()
    store = config.store if config.store is not None else Store(config.db_path)
    return service_app(ReferenceService(config, store))


def service_app(service: ReferenceService) -> Starlette:
    """The ASGI app answering the reference's routes with ``service`` (``app.state.service``)."""
    app = Starlette(
        routes=[
            Route("/messages", service.post_message, methods=["POST"]),
            Route("/threads/{thread_id}/messages", service.get_messages, methods=["GET"]),
        ]
    )
    app.state.service = service
    return app
