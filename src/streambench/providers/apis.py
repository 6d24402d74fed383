"""Which provider API a stream is, and what its events carry, over every registered API.

:func:`detect` names the provider and api of a recorded exchange (host table here, URL and
event shapes from each API module), :func:`event_content` returns the text / tool-input JSON /
thinking pieces one event carries, :func:`summarize` condenses a whole stream and
:func:`body_tool_calls` assembles its tool calls. The per-API rules live in the API modules
(:mod:`streambench.providers.registry`).
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from streambench.providers import registry
from streambench.providers.base import ContentKind, EventInfo, ProviderAPI, ToolCallPiece
from streambench.sse import SSEEvent, decode_all

API_NAMES = registry.api_names()
# Host suffix -> provider, for hosts whose second-level label is not the provider's name.
_HOST_PROVIDERS = {
    "generativelanguage.googleapis.com": "google",
    "aiplatform.googleapis.com": "google",
    "api.aws": "bedrock",
    "amazonaws.com": "bedrock",
    "snowflakecomputing.com": "snowflake",
    "crusoecloud.com": "crusoe",
    "z.ai": "zai",
    "huggingface.co": "huggingface",
    "openai.azure.com": "azure",
}


def _provider_from_host(host: str) -> str | None:
    host = host.lower().rstrip(".")
    if not host or host == "localhost" or _is_ip(host):
        return None
    for suffix, provider in _HOST_PROVIDERS.items():
        if host == suffix or host.endswith("." + suffix):
            return provider
    labels = host.split(".")
    return labels[-2] if len(labels) >= 2 else labels[0]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _api_from_path(host: str, path: str) -> str | None:
    segments = [s for s in path.split("/") if s]
    for name in API_NAMES:
        if registry.get(name).matches_url(host, segments, path):
            return name
    return None


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _api_from_events(events: Iterable[SSEEvent]) -> str | None:
    for ev in events:
        payload = _json(ev.data)
        if not isinstance(payload, dict):
            continue
        kind = str(payload.get("type") or ev.event)
        for name in API_NAMES:
            if registry.get(name).matches_event(kind, payload):
                return name
    return None


def detect(url: str, body: bytes, events: list[SSEEvent] | None = None) -> tuple[str, str]:
    """``(provider, api)`` of a recorded exchange, from its URL first, then from its events.

    >>> detect("https://api.groq.com/openai/v1/chat/completions", b"")
    ('groq', 'openai-chat')
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    api = _api_from_path(host, parts.path)
    if api is None:
        api = _api_from_events(decode_all(body) if events is None else events) or "generic-sse"
    return _provider_from_host(host) or registry.get(api).provider, api


# ---------------------------------------------------------------------------- content


# Events distinct in one process's cache; a matrix decodes the same recorded events on every
# run (plans, expected answers, upstream analysis), and parsing their JSON again dominated.
_CACHED_EVENTS = 1 << 16


def _interpret(api: str, ev: SSEEvent) -> EventInfo:
    """What ``ev`` carries (shared and read-only: callers never change it)."""
    return _interpret_with(registry.lookup(api), ev)


@functools.lru_cache(maxsize=_CACHED_EVENTS)
def _interpret_with(provider: ProviderAPI, ev: SSEEvent) -> EventInfo:
    return provider.interpret(ev)


def event_content(api: str, ev: SSEEvent) -> list[tuple[ContentKind, str]]:
    """The content pieces one event carries: ``(kind, text)``, kind text / tool_json / thinking."""
    return _interpret(api, ev).pieces


@dataclass
class ContentSummary:
    """What a whole stream said: concatenated content per kind, stop reason, error events."""

    text: str = ""
    tool_json: str = ""
    thinking: str = ""
    stop_reason: str | None = None
    errors: list[str] = field(default_factory=list)
    events: int = 0

    @property
    def text_chars(self) -> int:
        return len(self.text)

    @property
    def tool_json_chars(self) -> int:
        return len(self.tool_json)

    @property
    def thinking_chars(self) -> int:
        return len(self.thinking)


def summarize(api: str, events: Iterable[SSEEvent]) -> ContentSummary:
    """Condense a stream's events; malformed events become entries of ``errors``, not exceptions."""
    pieces: dict[ContentKind, list[str]] = {"text": [], "tool_json": [], "thinking": []}
    summary = ContentSummary()
    for ev in events:
        summary.events += 1
        info = _interpret(api, ev)
        for kind, piece in info.pieces:
            pieces[kind].append(piece)
        if info.stop_reason:
            summary.stop_reason = str(info.stop_reason)
        if info.error:
            summary.errors.append(info.error)
    summary.text = "".join(pieces["text"])
    summary.tool_json = "".join(pieces["tool_json"])
    summary.thinking = "".join(pieces["thinking"])
    return summary


def json_response(body: bytes) -> dict[str, Any] | None:
    """The object a non-streaming (``"stream": false``) response body holds; None for a stream
    (an SSE body never parses as one JSON object)."""
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        payload = json.loads(body)
    except ValueError:  # UnicodeDecodeError is one
        return None
    return payload if isinstance(payload, dict) else None


# Bodies summarized at once: a run asks for its recordings' and plans' summaries several times.
_CACHED_BODIES = 256


@functools.lru_cache(maxsize=_CACHED_BODIES)
def summarize_body(api: str, body: bytes) -> ContentSummary:
    """:func:`summarize` over a whole response body: an SSE stream's events, or the text and
    tool-call input of a non-streaming JSON response (a body that is one chunk of content).
    Shared and read-only: callers never change the summary."""
    payload = json_response(body)
    return summarize(api, decode_all(body)) if payload is None else summarize_json(api, payload)


def summarize_json(api: str, payload: dict[str, Any]) -> ContentSummary:
    """What a non-streaming JSON response said: its text and tool-call input."""
    return ContentSummary(
        text=registry.lookup(api).response_text(payload),
        tool_json="".join(piece.arguments for piece in json_tool_calls(api, payload)),
    )


# ---------------------------------------------------------------------------- tool calls


def event_tool_calls(api: str, ev: SSEEvent) -> list[ToolCallPiece]:
    """The tool-call pieces one event carries (parallel calls kept apart by ``call``)."""
    return list(_tool_calls(api, ev.data))


@functools.lru_cache(maxsize=_CACHED_EVENTS)
def _tool_calls(api: str, data: str) -> tuple[ToolCallPiece, ...]:
    provider = registry.lookup(api)
    if type(provider).tool_call_pieces is ProviderAPI.tool_call_pieces:
        return ()  # no tool calls in this API: its events need no parsing
    payload = _json(data)
    return tuple(provider.tool_call_pieces(payload)) if isinstance(payload, dict) else ()


def body_tool_calls(api: str, body: bytes) -> list[ToolCallPiece]:
    """The tool-call pieces of a whole response body: an SSE stream's, in order, or each call
    of a non-streaming JSON response whole."""
    payload = json_response(body)
    if payload is not None:
        return json_tool_calls(api, payload)
    return [piece for ev in decode_all(body) for piece in event_tool_calls(api, ev)]


def json_tool_calls(api: str, payload: dict[str, Any]) -> list[ToolCallPiece]:
    """The tool calls of a non-streaming JSON response, each whole in one piece."""
    calls = registry.lookup(api).response_tool_calls(payload)
    return [ToolCallPiece(str(i), call.name, call.arguments) for i, call in enumerate(calls)]
