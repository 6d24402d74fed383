"""LLM providers: each turns an :class:`LLMRequest` into an async stream of text deltas.

``anthropic`` (native SSE on ``/v1/messages``) and ``openai`` (native SSE on
``/chat/completions``) stream; ``anthropic-sync`` / ``openai-sync`` are the non-streaming
fallback of skytwin #151: one JSON response emitted as a single chunk. A request that offers a
tool also gets the tool call's input as :class:`ToolCallPiece` values, read by the API's module
(:mod:`streambench.providers`). Every failure — an HTTP
error status, a provider ``error`` event, malformed JSON, a stream that ends without its
terminal event, a transport error — is raised as :class:`ProviderError`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import httpx

from streambench.providers import anthropic_messages, openai_chat
from streambench.providers.apis import ToolCallPiece, event_tool_calls
from streambench.providers.base import ProviderAPI, ToolDefinition
from streambench.sse import SSEDecoder, SSEEvent

ANTHROPIC_VERSION = anthropic_messages.VERSION
# Without prefill support, the prefill becomes an instruction (see docs/reference.md).
OPENAI_PREFILL_INSTRUCTION = (
    "Respond with one JSON object only, no prose around it. Begin your answer exactly with:\n"
)


@dataclass(frozen=True)
class LLMRequest:
    """What the assistant asks for: ``prefill`` is the start of the answer the model continues;
    ``tool``: a tool offered for the structured part (``tool_forced``: it must be called)."""

    system: str
    messages: list[dict[str, str]]
    prefill: str = ""
    max_tokens: int = 4096
    tool: ToolDefinition | None = None
    tool_forced: bool = False


# What a provider streams: a text delta, or a piece of a tool call's input.
Delta = str | ToolCallPiece


class ProviderError(Exception):
    """A provider call failed; ``retry_after_s`` is set for 429/529 with a retry-after header."""

    def __init__(
        self, message: str, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


class Provider(Protocol):
    name: str
    model: str

    def stream(self, client: httpx.AsyncClient, request: LLMRequest) -> AsyncIterator[Delta]:
        """Yield the answer's text deltas and tool-input pieces; raise :class:`ProviderError`
        on any failure."""
        ...


@dataclass(frozen=True)
class _HttpProvider:
    """Shared HTTP plumbing: POST, status check, SSE decoding; subclasses speak one api."""

    name: str
    base_url: str
    api_key: str
    model: str
    streaming: bool = True
    timeout_s: float = 60.0

    url_path = ""
    api = "generic-sse"  # the wire API it speaks (streambench.providers.registry)
    wire: ClassVar[ProviderAPI]

    def _headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _body(self, request: LLMRequest) -> dict[str, Any]:
        raise NotImplementedError

    def _event_text(self, event: SSEEvent) -> str | None:
        """Text of one SSE event; None for the terminal event; raises on an error event."""
        raise NotImplementedError

    def _response_text(self, body: Any) -> str:
        raise NotImplementedError

    def _event_deltas(self, event: SSEEvent, tools: bool) -> list[Delta] | None:
        text = self._event_text(event)
        if text is None:
            return None
        found: list[Delta] = [text] if text else []
        return found + event_tool_calls(self.api, event) if tools else found

    def _response_deltas(self, body: Any, tools: bool) -> list[Delta]:
        text = self._response_text(body)
        found: list[Delta] = [text] if text else []
        if tools:
            for index, call in enumerate(self.wire.response_tool_calls(body)):
                found.append(ToolCallPiece(str(index), call.name, call.arguments))
        return found

    async def stream(self, client: httpx.AsyncClient, request: LLMRequest) -> AsyncIterator[Delta]:
        body = {**self._body(request), "stream": self.streaming}
        tools = request.tool is not None
        if request.tool is not None:
            body.update(self.wire.tool_fields(request.tool, request.tool_forced))
        headers = self._headers()
        if self.streaming:
            headers["accept"] = "text/event-stream"
        url = self.base_url.rstrip("/") + self.url_path
        try:
            async with client.stream(
                "POST", url, json=body, headers=headers, timeout=self.timeout_s
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _http_error(self.name, response)
                if not self.streaming:
                    await response.aread()
                    for delta in self._response_deltas(_json(self.name, response.text), tools):
                        yield delta
                    return
                decoder = SSEDecoder()
                async for data in response.aiter_bytes():
                    for event in decoder.feed(data):
                        deltas = self._event_deltas(event, tools)
                        if deltas is None:
                            return
                        for delta in deltas:
                            yield delta
                raise ProviderError(f"{self.name}: stream ended before its terminal event")
        except httpx.HTTPError as exc:
            raise ProviderError(f"{self.name}: {type(exc).__name__}: {exc}") from exc


def _json(name: str, data: str) -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise ProviderError(f"{name}: malformed JSON from provider: {exc}") from None


def _http_error(name: str, response: httpx.Response) -> ProviderError:
    try:
        detail = response.json().get("error", {}).get("message", "")
    except (ValueError, AttributeError):
        detail = response.text[:200]
    retry_after_s = None
    if response.status_code in (429, 529):
        try:
            retry_after_s = float(response.headers["retry-after"])
        except (KeyError, ValueError):
            retry_after_s = None
    message = f"{name}: HTTP {response.status_code}" + (f" {detail}" if detail else "")
    return ProviderError(message, response.status_code, retry_after_s)


class AnthropicMessages(_HttpProvider):
    url_path = anthropic_messages.API.path
    api = anthropic_messages.API.name
    wire = anthropic_messages.API

    def _headers(self) -> dict[str, str]:
        return {"x-api-key": self.api_key, "anthropic-version": ANTHROPIC_VERSION}

    def _body(self, request: LLMRequest) -> dict[str, Any]:
        messages = list(request.messages)
        if request.prefill:
            messages.append({"role": "assistant", "content": request.prefill})
        return {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "system": request.system,
            "messages": messages,
        }

    def _event_text(self, event: SSEEvent) -> str | None:
        data = _json(self.name, event.data)
        kind = data.get("type") if isinstance(data, dict) else None
        if event.event == "error" or kind == "error":
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise ProviderError(
                f"{self.name}: error event: {error.get('type', '')} {error.get('message', '')}"
            )
        if kind == "message_stop":
            return None
        if kind == "content_block_delta" and data["delta"].get("type") == "text_delta":
            return str(data["delta"]["text"])
        return ""

    def _response_text(self, body: Any) -> str:
        blocks = body.get("content", []) if isinstance(body, dict) else []
        return "".join(b.get("text", "") for b in blocks if b.get("type") == "text")


class OpenAIChat(_HttpProvider):
    url_path = "/chat/completions"  # under an OpenAI-SDK style base URL (ending in /v1)
    api = openai_chat.API.name
    wire = openai_chat.API

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"}

    def _body(self, request: LLMRequest) -> dict[str, Any]:
        system = request.system
        if request.prefill:
            system += "\n\n" + OPENAI_PREFILL_INSTRUCTION + request.prefill
        return {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": "system", "content": system}, *request.messages],
        }

    def _event_text(self, event: SSEEvent) -> str | None:
        if event.data.strip() == "[DONE]":
            return None
        data = _json(self.name, event.data)
        if not isinstance(data, dict):
            raise ProviderError(f"{self.name}: unexpected chunk {event.data[:80]!r}")
        if "error" in data:
            raise ProviderError(f"{self.name}: error event: {data['error']}")
        return "".join(
            _chat_text(choice.get("delta", {}).get("content")) for choice in data.get("choices", [])
        )

    def _response_text(self, body: Any) -> str:
        choices = body.get("choices", []) if isinstance(body, dict) else []
        return "".join(_chat_text(c.get("message", {}).get("content")) for c in choices)


def _chat_text(content: Any) -> str:
    """A chat message's text: a string, or (Mistral) a list of parts whose thinking is not
    the answer."""
    if isinstance(content, list):
        return "".join(
            part.get("text") or ""
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return content or ""


# Provider kinds accepted in STREAMBENCH_PROVIDERS: (class, streaming).
KINDS: dict[str, tuple[type[AnthropicMessages | OpenAIChat], bool]] = {
    "anthropic": (AnthropicMessages, True),
    "anthropic-sync": (AnthropicMessages, False),
    "openai": (OpenAIChat, True),
    "openai-sync": (OpenAIChat, False),
}
# The streaming kind of each wire API the reference speaks.
KIND_OF_API = {cls.api: kind for kind, (cls, streaming) in KINDS.items() if streaming}
