"""generic-sse: any other SSE stream; each event's data is its content."""

from __future__ import annotations

from typing import Any

from streambench.providers.base import ProviderAPI
from streambench.providers.openai_chat import API as OPENAI_CHAT
from streambench.sse import SSEEvent


class GenericSSE(ProviderAPI):
    """Nothing to detect, no renderer; the data is the text. Errors take OpenAI's shape, the
    one most SSE servers copy."""

    def http_error(self, status: int, retry_after_s: float | None) -> tuple[dict[str, str], Any]:
        return OPENAI_CHAT.http_error(status, retry_after_s)

    def error_event(self, sequence_number: int = 0) -> SSEEvent:
        return OPENAI_CHAT.error_event(sequence_number)


API = GenericSSE()
