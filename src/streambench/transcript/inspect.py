"""One row per transcript for ``streambench inspect``: size, timing, api-aware content summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from streambench.providers.apis import summarize
from streambench.sse import decode_all
from streambench.transcript import Transcript


@dataclass
class TranscriptInfo:
    file: str
    provider: str
    api: str
    events: int
    bytes: int
    duration_ms: float | None
    text_chars: int
    tool_json_chars: int
    thinking_chars: int
    stop_reason: str | None
    errors: list[str] = field(default_factory=list)
    source: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def display_name(t: Transcript) -> str:
    """The file name, plus ``#index`` for a transcript read out of a cassette."""
    if t.path is None:
        return t.meta.source or "<memory>"
    source = t.meta.source or ""
    prefix = f"{t.path}#"
    return t.path.name + source[len(prefix) - 1 :] if source.startswith(prefix) else t.path.name


def describe(t: Transcript) -> TranscriptInfo:
    """Decode the transcript's body and summarise it the way its api defines content."""
    summary = summarize(t.meta.api, decode_all(t.response.body))
    chunks = t.response.chunks
    return TranscriptInfo(
        file=display_name(t),
        provider=t.meta.provider,
        api=t.meta.api,
        events=summary.events,
        bytes=len(t.response.body),
        duration_ms=chunks[-1][0] if chunks else None,
        text_chars=summary.text_chars,
        tool_json_chars=summary.tool_json_chars,
        thinking_chars=summary.thinking_chars,
        stop_reason=summary.stop_reason,
        errors=summary.errors,
        source=t.meta.source,
    )
