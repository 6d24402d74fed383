"""A provider chain with the classic failover bug: any failure moves on to the next provider,
even after chunks were shown (so the user sees a second answer appended to the first)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import httpx

from streambench.reference.chain import AllProvidersFailed, Chunk, StreamDone, StreamEvent
from streambench.reference.providers import LLMRequest, Provider, ProviderError


class NaiveChain:
    def __init__(self, providers: Sequence[Provider], http: httpx.AsyncClient) -> None:
        self.providers = list(providers)
        self.http = http

    async def generate_stream(self, request: LLMRequest) -> AsyncIterator[StreamEvent]:
        errors: list[tuple[str, str]] = []
        for provider in self.providers:
            parts: list[str] = []
            try:
                async for text in provider.stream(self.http, request):
                    parts.append(text)
                    yield Chunk(text)
            except ProviderError as exc:
                errors.append((provider.name, str(exc)))
                continue
            yield StreamDone("".join(parts), provider.name, provider.model, 0.0)
            return
        raise AllProvidersFailed(errors)
