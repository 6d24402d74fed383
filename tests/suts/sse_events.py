"""The streambench wire format (docs/wire-format.md) for the example backends: text as
``chunk`` events, then one ``done`` or ``error``."""

from __future__ import annotations

import json
from typing import Any


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def chunk(text: str) -> bytes:
    return sse("chunk", {"content": text})


def done(content: str, provider: str) -> bytes:
    return sse("done", {"content": content, "code": None, "yaml": None, "provider": provider})


def error(partial: str, message: str) -> bytes:
    return sse("error", {"partial_content": partial, "message": message})
