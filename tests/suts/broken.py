"""Backends with the bugs real users ship, each an ASGI app factory for ``--sut module:attr``.

* ``always_error``: the feature is switched off behind a flag nobody set; every request gets
  one ``error`` event and no provider is ever called;
* ``lossy_lines``: a hand-written SSE reader that splits each network read on newlines and
  keeps only the complete lines, so the piece of a line at the end of a read is lost;
* ``stripped_text``: "cleans" every model delta with ``.strip()``, gluing words together.

The last two are the reference stack with the user's provider code swapped in: everything
else about them is correct, so what the rules flag is the bug.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from streambench.reference.app import create_app
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
