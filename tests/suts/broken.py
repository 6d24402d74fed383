"""Backends with the bugs real users ship, each an ASGI app factory for ``--sut module:attr``.

* ``always_error``: the feature is switched off behind a flag nobody set; every request gets
  one ``error`` event and no provider is ever called;
* ``lossy_lines``: a hand-written SSE reader that splits each network read on newlines and
  keeps only the complete lines, so the piece of a line at the end of a read is lost;
* ``stripped_text``: "cleans" every model delta with ``.strip()``, gluing words together;
* ``seconds_latency``: stores ``latency_ms`` from a ``time.monotonic()`` difference without
  the ``* 1000``;
* ``status_pings``: a progress ticker that sends "Still writing..." every third chunk;
* ``counted_patches``: reports ``patches_applied = len(code_edits)`` and drops the warnings;
* ``previous_turn``: builds the prompt from the thread's history as read before this turn was
  stored, so the model is asked the previous question (on a new thread: an empty message).
* ``done_on_max_tokens``: treats the model's stop at max_tokens as a finished answer: where the
  reference says the answer is unusable it sends ``done`` with what arrived (the text so far,
  the code as far as the edits got).

All but the first are the reference stack with the user's code swapped in at one place:
everything else about them is correct, so what the rules flag is the bug.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from streambench.reference.app import ReferenceService, WireEvent, create_app
from streambench.reference.config import ReferenceConfig
from streambench.reference.providers import (
    AnthropicMessages,
    LLMRequest,
    OpenAIChat,
    ProviderError,
)
from streambench.reference.store import Store
from streambench.sse import SSEEvent


def always_error() -> Starlette:
    async def messages(request: Request) -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            thread = {"id": str(uuid.uuid4()), "is_new": True}
            yield f"event: thread\ndata: {json.dumps(thread)}\n\n".encode()
            failure = {"partial_content": "", "message": "the assistant is not enabled"}
            yield f"event: error\ndata: {json.dumps(failure)}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/messages", messages, methods=["POST"])])


class _LineReader:
    """The user's own SSE reading loop, shared by both provider classes below."""

    async def stream(self, client: httpx.AsyncClient, request: LLMRequest) -> AsyncIterator[str]:
        url = self.base_url.rstrip("/") + self.url_path  # type: ignore[attr-defined]
        body = {**self._body(request), "stream": True}  # type: ignore[attr-defined]
        headers = {**self._headers(), "accept": "text/event-stream"}  # type: ignore[attr-defined]
        async with client.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code >= 400:
                retry = response.headers.get("retry-after")
                raise ProviderError(
                    f"HTTP {response.status_code}",
                    response.status_code,
                    float(retry) if retry else None,
                )
            name, data = "message", []
            async for chunk in response.aiter_text():
                for line in chunk.split("\n")[:-1]:  # the bug: the last piece is not kept
                    line = line.rstrip("\r")
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip())
                    elif not line and data:
                        text = self._event_text(SSEEvent(name, "\n".join(data)))  # type: ignore[attr-defined]
                        name, data = "message", []
                        if text is None:
                            return
                        if text:
                            yield text
        raise ProviderError(f"{self.name}: stream ended early")  # type: ignore[attr-defined]


class _LossyAnthropic(_LineReader, AnthropicMessages):
    pass


class _LossyOpenAI(_LineReader, OpenAIChat):
    pass


class _StrippingAnthropic(AnthropicMessages):
    def _event_text(self, event: SSEEvent) -> str | None:
        text = super()._event_text(event)
        return text.strip() if text else text


class _StrippingOpenAI(OpenAIChat):
    def _event_text(self, event: SSEEvent) -> str | None:
        text = super()._event_text(event)
        return text.strip() if text else text


@dataclass
class _Config(ReferenceConfig):
    anthropic_class: type[AnthropicMessages] = AnthropicMessages
    openai_class: type[OpenAIChat] = OpenAIChat

    def build_providers(self) -> list[AnthropicMessages | OpenAIChat]:
        return [
            self.anthropic_class("anthropic", self.anthropic_base_url, "", self.anthropic_model),
            self.openai_class("openai", self.openai_base_url, "", self.openai_model),
        ]


def lossy_lines() -> Starlette:
    return create_app(
        _Config(store=Store(":memory:"), anthropic_class=_LossyAnthropic, openai_class=_LossyOpenAI)
    )


def stripped_text() -> Starlette:
    return create_app(
        _Config(
            store=Store(":memory:"),
            anthropic_class=_StrippingAnthropic,
            openai_class=_StrippingOpenAI,
        )
    )


class _SecondsLatency(ReferenceService):
    def _persist_reply(self, thread_id: str, reply: Any) -> dict[str, Any]:
        row = super()._persist_reply(thread_id, reply)
        return {**row, "latency_ms": reply.latency_ms / 1000}


class _StatusPings(ReferenceService):
    async def message_events(self, *args: Any, **kwargs: Any) -> AsyncIterator[WireEvent]:
        chunks = 0
        async for name, data in super().message_events(*args, **kwargs):
            yield name, data
            chunks += name == "chunk"
            if name == "chunk" and chunks % 3 == 0:
                yield "status", {"message": "Still writing..."}


class _CountedPatches(ReferenceService):
    async def message_events(self, *args: Any, **kwargs: Any) -> AsyncIterator[WireEvent]:
        async for name, data in super().message_events(*args, **kwargs):
            if name == "changes" and isinstance(data.get("code_edits"), list):
                data = {**data, "patches_applied": len(data["code_edits"]), "warnings": []}
            yield name, data


class _PreviousTurn(ReferenceService):
    async def message_events(self, message: Any, *args: Any) -> AsyncIterator[WireEvent]:
        history = args[-1]
        asked = next((m["content"] for m in reversed(history) if m["role"] == "user"), "")
        async for event in super().message_events(replace(message, content=asked), *args):
            yield event


class _DoneOnMaxTokens(ReferenceService):
    async def message_events(self, *args: Any, **kwargs: Any) -> AsyncIterator[WireEvent]:
        code: Any = None
        async for name, data in super().message_events(*args, **kwargs):
            if name == "changes":
                code = data.get("code", data.get("yaml"))
            if name == "error" and "unusable" in data["message"]:  # "the model just stopped"
                name = "done"
                data = {"content": data["partial_content"], "code": code, "latency_ms": 0.0}
            yield name, data


def _app(service_class: type[ReferenceService]) -> Starlette:
    service = service_class(ReferenceConfig(store=Store(":memory:")), Store(":memory:"))
    return Starlette(routes=[Route("/messages", service.post_message, methods=["POST"])])


def seconds_latency() -> Starlette:
    return _app(_SecondsLatency)


def status_pings() -> Starlette:
    return _app(_StatusPings)


def counted_patches() -> Starlette:
    return _app(_CountedPatches)


def previous_turn() -> Starlette:
    return _app(_PreviousTurn)


def done_on_max_tokens() -> Starlette:
    return _app(_DoneOnMaxTokens)
