"""Render provider wire-format bodies (SSE streams and JSON responses) from plain content.

Pure functions: the same arguments give the same bytes (ids and timestamps derive from the
content). Each API's shapes live in its module (:mod:`streambench.providers.registry`); they
follow the real streams in ../shared/corpus.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypedDict, Unpack

from streambench.errors import SpecError
from streambench.providers import registry
from streambench.providers.base import CREATED, Content, Frame, ToolCall, digest, split_deltas
from streambench.transcript import Meta, Request, Response, Transcript

__all__ = [
    "APIS",
    "CREATED",
    "DEFAULT_MODELS",
    "DEFAULT_URLS",
    "PROVIDERS",
    "Frame",
    "ToolCall",
    "event_spans",
    "make_transcript",
    "render",
    "render_frames",
    "render_json_response",
    "split_deltas",
]

APIS = registry.renderable()
DEFAULT_MODELS = {api: registry.get(api).default_model for api in APIS}
DEFAULT_URLS = {api: registry.get(api).url(registry.get(api).default_model) for api in APIS}
PROVIDERS = {api: registry.get(api).provider for api in APIS}


def _content(
    api: str,
    text: str,
    deltas: Sequence[str] | None,
    thinking: str,
    tool_calls: Sequence[ToolCall],
    model: str | None,
    stop_reason: str | None,
    message_id: str | None,
) -> Content:
    if api not in APIS:
        raise SpecError(f"unknown api {api!r}: expected one of {', '.join(APIS)}")
    pieces = list(deltas) if deltas is not None else split_deltas(text)
    return Content(
        deltas=pieces,
        thinking=split_deltas(thinking),
        tool_calls=tuple(tool_calls),
        model=model or DEFAULT_MODELS[api],
        message_id=message_id
        or registry.get(api).id_prefix + digest(api, pieces, thinking, tool_calls),
        stop_reason=stop_reason,
    )


class RenderOptions(TypedDict, total=False):
    """What a rendered stream says (every key optional)."""

    text: str  # cut by split_deltas unless ``deltas`` gives the exact pieces
    deltas: Sequence[str] | None
    thinking: str
    tool_calls: Sequence[ToolCall]
    model: str | None
    stop_reason: str | None
    message_id: str | None


def render_frames(api: str, **options: Unpack[RenderOptions]) -> list[Frame]:
    """The stream as a list of SSE events (what :func:`render` joins), for paced sending."""
    content = _content(
        api,
        options.get("text", ""),
        options.get("deltas"),
        options.get("thinking", ""),
        options.get("tool_calls", ()),
        options.get("model"),
        options.get("stop_reason"),
        options.get("message_id"),
    )
    return registry.get(api).render(content)


def render(api: str, **options: Unpack[RenderOptions]) -> bytes:
    """A complete SSE response body in ``api``'s wire format.

    ``deltas`` gives the exact text pieces; otherwise ``text`` is cut by :func:`split_deltas`.
    """
    return b"".join(frame.data for frame in render_frames(api, **options))


# --- non-streaming JSON ---------------------------------------------------------------------


def render_json_response(
    api: str, text: str, model: str | None = None, tool_calls: Sequence[ToolCall] = ()
) -> bytes:
    """The non-streaming (``"stream": false``) response body carrying ``text`` and
    ``tool_calls``."""
    body: dict[str, Any] = registry.get(api).render_json(
        _content(api, text, None, "", tool_calls, model, None, None)
    )
    return json.dumps(body, ensure_ascii=False, indent=2).encode()


# --- transcripts ----------------------------------------------------------------------------


def event_spans(body: bytes) -> list[int]:
    """Byte lengths of the SSE events of ``body`` (each up to and including its blank line)."""
    lengths: list[int] = []
    start = 0
    while start < len(body):
        end = body.find(b"\n\n", start)
        end = len(body) if end < 0 else end + 2
        lengths.append(end - start)
        start = end
    return lengths


def make_transcript(
    api: str,
    body: bytes,
    *,
    request_body: Any,
    url: str | None = None,
    chunk_times_ms: Sequence[float] | None = None,
    notes: str | None = "synthesised by streambench.transcript.synth",
    status: int = 200,
) -> Transcript:
    """A transcript of a synthesised exchange. ``chunk_times_ms`` gives one arrival time per SSE
    event of ``body`` (the body is then chunked at event boundaries); without it, no chunks."""
    chunks: list[tuple[float, int]] | None = None
    if chunk_times_ms is not None:
        spans = event_spans(body)
        if len(spans) != len(chunk_times_ms):
            raise SpecError(
                f"chunk_times_ms has {len(chunk_times_ms)} times, the body has {len(spans)} events"
            )
        chunks = [(float(t_ms), n) for t_ms, n in zip(chunk_times_ms, spans, strict=True)]
    streamed = body.lstrip().startswith((b"event:", b"data:"))
    content_type = "text/event-stream; charset=utf-8" if streamed else "application/json"
    return Transcript(
        meta=Meta(
            provider=PROVIDERS[api], api=api, source="streambench.transcript.synth", notes=notes
        ),
        request=Request(
            method="POST",
            url=url or DEFAULT_URLS[api],
            headers={"content-type": "application/json"},
            body=request_body,
        ),
        response=Response(
            status=status, headers={"content-type": content_type}, body=body, chunks=chunks
        ),
    )
