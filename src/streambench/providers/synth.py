"""Render provider wire-format bodies (SSE streams and JSON responses) from plain content.

Pure functions: the same arguments give the same bytes (ids and timestamps derive from the
content). The shapes follow the real streams in ../shared/corpus: anthropic-messages
(``message_start`` ... ``message_stop``), openai-chat (``chat.completion.chunk`` objects, then
``data: [DONE]``) and openai-responses (``response.created`` ... ``response.completed``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streambench.errors import SpecError
from streambench.transcript import Meta, Request, Response, Transcript

APIS = ("anthropic-messages", "openai-chat", "openai-responses")
DEFAULT_MODELS = {
    "anthropic-messages": "claude-sonnet-4-20250514",
    "openai-chat": "gpt-4o-2024-08-06",
    "openai-responses": "gpt-4o-2024-08-06",
}
DEFAULT_URLS = {
    "anthropic-messages": "https://api.anthropic.com/v1/messages",
    "openai-chat": "https://api.openai.com/v1/chat/completions",
    "openai-responses": "https://api.openai.com/v1/responses",
}
PROVIDERS = {
    "anthropic-messages": "anthropic",
    "openai-chat": "openai",
    "openai-responses": "openai",
}
# Fixed epoch second for `created` fields: rendered bodies must not depend on the clock.
CREATED = 1754693439
_WORDS = re.compile(r"\s*\S+|\s+")
_MAX_PIECE_CHARS = 6


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model makes: ``arguments`` is the JSON text it streams."""

    name: str
    arguments: str = "{}"
    id: str | None = None


@dataclass(frozen=True)
class Frame:
    """One SSE event of a rendered stream; ``tokens`` counts the content deltas it carries."""

    data: bytes
    tokens: int = 0


def split_deltas(text: str) -> list[str]:
    """Token-like pieces of ``text``, deterministic: words with their leading space, long words
    cut into 4-character pieces. ``"".join(split_deltas(t)) == t``.

    >>> split_deltas("Here are the pedestrian steps")
    ['Here', ' are', ' the', ' ped', 'estr', 'ian', ' steps']
    """
    pieces: list[str] = []
    for word in _WORDS.findall(text):
        while len(word) > _MAX_PIECE_CHARS:
            pieces.append(word[:4])
            word = word[4:]
        pieces.append(word)
    return pieces


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _sse(data: Any, event: str | None = None, tokens: int = 0) -> Frame:
    payload = data if isinstance(data, str) else _dumps(data)
    head = f"event: {event}\n" if event else ""
    return Frame(f"{head}data: {payload}\n\n".encode(), tokens)


def _digest(*parts: object, n: int = 24) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:n]


@dataclass(frozen=True)
class _Content:
    deltas: list[str]
    thinking: list[str]
    tool_calls: Sequence[ToolCall]
    model: str
    message_id: str
    stop_reason: str | None

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    @property
    def output_tokens(self) -> int:
        args = sum(len(split_deltas(call.arguments)) for call in self.tool_calls)
        return len(self.deltas) + len(self.thinking) + args

    def call_id(self, index: int, prefix: str) -> str:
        call = self.tool_calls[index]
        return call.id or f"{prefix}{_digest(self.message_id, index, call.name)}"


def _content(
    api: str,
    text: str,
    deltas: Sequence[str] | None,
    thinking: str,
    tool_calls: Sequence[ToolCall],
    model: str | None,
    stop_reason: str | None,
    message_id: str | None,
) -> _Content:
    if api not in APIS:
        raise SpecError(f"unknown api {api!r}: expected one of {', '.join(APIS)}")
    pieces = list(deltas) if deltas is not None else split_deltas(text)
    prefix = {"anthropic-messages": "msg_01", "openai-chat": "chatcmpl-"}.get(api, "resp_")
    return _Content(
        deltas=pieces,
        thinking=split_deltas(thinking),
        tool_calls=tuple(tool_calls),
        model=model or DEFAULT_MODELS[api],
        message_id=message_id or prefix + _digest(api, pieces, thinking, tool_calls),
        stop_reason=stop_reason,
    )


def render_frames(
    api: str,
    *,
    text: str = "",
    deltas: Sequence[str] | None = None,
    thinking: str = "",
    tool_calls: Sequence[ToolCall] = (),
    model: str | None = None,
    stop_reason: str | None = None,
    message_id: str | None = None,
) -> list[Frame]:
    """The stream as a list of SSE events (what :func:`render` joins), for paced sending."""
    content = _content(api, text, deltas, thinking, tool_calls, model, stop_reason, message_id)
    return _RENDERERS[api](content)


def render(
    api: str,
    *,
    text: str = "",
    deltas: Sequence[str] | None = None,
    thinking: str = "",
    tool_calls: Sequence[ToolCall] = (),
    model: str | None = None,
    stop_reason: str | None = None,
    message_id: str | None = None,
) -> bytes:
    """A complete SSE response body in ``api``'s wire format.

    ``deltas`` gives the exact text pieces; otherwise ``text`` is cut by :func:`split_deltas`.
    """
    frames = render_frames(
        api,
        text=text,
        deltas=deltas,
        thinking=thinking,
        tool_calls=tool_calls,
        model=model,
        stop_reason=stop_reason,
        message_id=message_id,
    )
    return b"".join(frame.data for frame in frames)


# --- anthropic-messages ---------------------------------------------------------------------


def _anthropic(c: _Content) -> list[Frame]:
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
    frames = [_sse({"type": "message_start", "message": message}, "message_start")]
    blocks: list[tuple[dict[str, Any], str, list[str]]] = []
    if c.thinking:
        block = {"type": "thinking", "thinking": "", "signature": ""}
        blocks.append((block, "thinking_delta", c.thinking))
    if c.deltas or not (c.thinking or c.tool_calls):
        blocks.append(({"type": "text", "text": ""}, "text_delta", c.deltas))
    for i, call in enumerate(c.tool_calls):
        block = {"type": "tool_use", "id": c.call_id(i, "toolu_01"), "name": call.name, "input": {}}
        blocks.append((block, "input_json_delta", ["", *split_deltas(call.arguments)]))
    field = {"thinking_delta": "thinking", "text_delta": "text", "input_json_delta": "partial_json"}
    for index, (block, delta_type, pieces) in enumerate(blocks):
        start = {"type": "content_block_start", "index": index, "content_block": block}
        frames.append(_sse(start, "content_block_start"))
        if index == 0:
            frames.append(_sse('{"type": "ping"}', "ping"))
        for piece in pieces:
            delta = {"type": delta_type, field[delta_type]: piece}
            body = {"type": "content_block_delta", "index": index, "delta": delta}
            frames.append(_sse(body, "content_block_delta", tokens=1 if piece else 0))
        if delta_type == "thinking_delta":
            signature = {"type": "signature_delta", "signature": _digest(c.thinking, n=64)}
            body = {"type": "content_block_delta", "index": index, "delta": signature}
            frames.append(_sse(body, "content_block_delta"))
        frames.append(_sse({"type": "content_block_stop", "index": index}, "content_block_stop"))
    stop = c.stop_reason or ("tool_use" if c.tool_calls else "end_turn")
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
        "usage": {"output_tokens": c.output_tokens},
    }
    frames.append(_sse(delta, "message_delta"))
    frames.append(_sse({"type": "message_stop"}, "message_stop"))
    return frames


# --- openai-chat ----------------------------------------------------------------------------


def _openai_chat(c: _Content) -> list[Frame]:
    def chunk(delta: dict[str, Any], finish: str | None = None, tokens: int = 0) -> Frame:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse(
            {
                "id": c.message_id,
                "object": "chat.completion.chunk",
                "created": CREATED,
                "model": c.model,
                "service_tier": "default",
                "system_fingerprint": "fp_" + _digest(c.model, n=10),
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
        head = {"index": i, "id": c.call_id(i, "call_"), "type": "function", "function": function}
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
    frames.append(_sse(usage))
    frames.append(_sse("[DONE]"))
    return frames


# --- openai-responses -----------------------------------------------------------------------


def _response_object(c: _Content, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    incomplete = status == "incomplete"
    usage = {
        "input_tokens": 25,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": c.output_tokens,
        "output_tokens_details": {"reasoning_tokens": len(c.thinking)},
        "total_tokens": 25 + c.output_tokens,
    }
    return {
        "id": c.message_id,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": c.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage if status != "in_progress" else None,
        "user": None,
        "metadata": {},
    }


def _openai_responses(c: _Content) -> list[Frame]:
    frames: list[Frame] = []

    def emit(event: str, tokens: int = 0, **fields: Any) -> None:
        body = {"type": event, **fields, "sequence_number": len(frames)}
        frames.append(_sse(body, event, tokens))

    status = (
        "incomplete"
        if c.stop_reason in ("max_tokens", "length", "max_output_tokens")
        else "completed"
    )
    emit("response.created", response=_response_object(c, "in_progress", []))
    emit("response.in_progress", response=_response_object(c, "in_progress", []))
    output: list[dict[str, Any]] = []
    if c.thinking:
        item_id = "rs_" + _digest(c.message_id, "reasoning", n=48)
        index = len(output)
        emit("response.output_item.added", output_index=index,
             item={"id": item_id, "type": "reasoning", "summary": []})  # fmt: skip
        ids = {"item_id": item_id, "output_index": index, "summary_index": 0}
        emit(
            "response.reasoning_summary_part.added",
            **ids,
            part={"type": "summary_text", "text": ""},
        )
        for piece in c.thinking:
            emit("response.reasoning_summary_text.delta", tokens=1, **ids, delta=piece)
        summary = {"type": "summary_text", "text": "".join(c.thinking)}
        emit("response.reasoning_summary_text.done", **ids, text=summary["text"])
        emit("response.reasoning_summary_part.done", **ids, part=summary)
        item = {"id": item_id, "type": "reasoning", "summary": [summary]}
        emit("response.output_item.done", output_index=index, item=item)
        output.append(item)
    if c.deltas or not (c.thinking or c.tool_calls):
        item_id = "msg_" + _digest(c.message_id, "message", n=48)
        index = len(output)
        item = {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant"}
        emit("response.output_item.added", output_index=index, item={**item, "content": []})
        ids = {"item_id": item_id, "output_index": index, "content_index": 0}
        empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        emit("response.content_part.added", **ids, part=empty)
        for piece in c.deltas:
            emit("response.output_text.delta", tokens=1, **ids, delta=piece, logprobs=[])
        emit("response.output_text.done", **ids, text=c.text, logprobs=[])
        part = {**empty, "text": c.text}
        emit("response.content_part.done", **ids, part=part)
        item = {**item, "status": "completed", "content": [part]}
        emit("response.output_item.done", output_index=index, item=item)
        output.append(item)
    for i, call in enumerate(c.tool_calls):
        item_id = "fc_" + _digest(c.message_id, "call", i, n=48)
        index = len(output)
        item = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": c.call_id(i, "call_"),
            "name": call.name,
        }
        emit("response.output_item.added", output_index=index, item=item)
        for piece in split_deltas(call.arguments):
            emit("response.function_call_arguments.delta", tokens=1, item_id=item_id,
                 output_index=index, delta=piece)  # fmt: skip
        emit("response.function_call_arguments.done", item_id=item_id, output_index=index,
             arguments=call.arguments)  # fmt: skip
        item = {**item, "status": "completed", "arguments": call.arguments}
        emit("response.output_item.done", output_index=index, item=item)
        output.append(item)
    final = "response.completed" if status == "completed" else "response.incomplete"
    emit(final, response=_response_object(c, status, output))
    return frames


_RENDERERS = {
    "anthropic-messages": _anthropic,
    "openai-chat": _openai_chat,
    "openai-responses": _openai_responses,
}


# --- non-streaming JSON ---------------------------------------------------------------------


def render_json_response(api: str, text: str, model: str | None = None) -> bytes:
    """The non-streaming (``"stream": false``) response body carrying ``text``."""
    c = _content(api, text, None, "", (), model, None, None)
    body: dict[str, Any]
    if api == "anthropic-messages":
        body = {
            "id": c.message_id,
            "type": "message",
            "role": "assistant",
            "model": c.model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": c.output_tokens},
        }
    elif api == "openai-chat":
        message = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        body = {
            "id": c.message_id,
            "object": "chat.completion",
            "created": CREATED,
            "model": c.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": 25,
                "completion_tokens": c.output_tokens,
                "total_tokens": 25 + c.output_tokens,
            },
            "service_tier": "default",
        }
    else:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
        item = {
            "id": "msg_" + _digest(c.message_id, "message", n=48),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [part],
        }
        body = _response_object(c, "completed", [item])
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
    notes: str | None = "synthesised by streambench.providers.synth",
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
            provider=PROVIDERS[api], api=api, source="streambench.providers.synth", notes=notes
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
