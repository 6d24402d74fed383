"""streambench: record, replay and grade LLM streaming (server-sent events) implementations."""

from __future__ import annotations

from streambench.errors import ConfigError, SpecError, StreambenchError, TranscriptError

__all__ = [
    "ConfigError",
    "SpecError",
    "StreambenchError",
    "TranscriptError",
]
__version__ = "0.1.0"
