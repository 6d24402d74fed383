"""streambench: record, replay and grade LLM streaming (server-sent events) implementations."""

from __future__ import annotations

from streambench.errors import ConfigError, SpecError, StreambenchError, TranscriptError
from streambench.sse import SSEDecoder, SSEEvent, decode_all, encode

__all__ = [
    "ConfigError",
    "SSEDecoder",
    "SSEEvent",
    "SpecError",
    "StreambenchError",
    "TranscriptError",
    "decode_all",
    "encode",
]
__version__ = "0.1.0"
