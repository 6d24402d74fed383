"""The provider chain (skytwin #151): stream from the first provider that delivers.

Failures before the first chunk fall through to the next provider (nothing was shown, a
silent retry is safe). Once a provider yielded a chunk (text, or tool-call input) it is
committed: a later failure ends the stream in :class:`StreamFailed` with the text already
shown, never in a retry that would show the answer twice. When every provider fails before
its first chunk, :class:`AllProvidersFailed` names each one's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

import httpx

from streambench.providers.apis import ToolCallPiece
from streambench.reference.providers import LLMRequest, Provider, ProviderError

RETRYABLE_STATUSES = (429, 529)


@dataclass(frozen=True)
class Chunk:
    """A text delta, or (``tool`` set, ``text`` empty) a piece of a tool call's input."""

    text: str
    tool: ToolCallPiece | None = None


@dataclass(frozen=True)
class StreamDone:
    full_content: str
    provider: str
    model: str
    latency_ms: float


@dataclass(frozen=True)
class StreamFailed:
    partial_content: str
    message: str


StreamEvent = Chunk | StreamDone | StreamFailed


class AllProvidersFailed(Exception):
    """No provider yielded a chunk; ``errors`` holds (provider, message) for each."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        self.errors = list(errors)
        detail = "; ".join(message for _, message in self.errors) or "no providers configured"
        super().__init__(f"all providers failed: {detail}")


class LLMClient:
    """Streams from ``providers`` in order over one httpx client.

    ``max_retry_wait_s`` bounds the total time spent honouring retry-after on 429/529 (only
    before the first chunk); a retry-after beyond what is left falls through instead.
    """

    def __init__(
        self,
        providers: Sequence[Provider],
        http: httpx.AsyncClient,
        max_retry_wait_s: float = 10.0,
    ) -> None:
        self.providers = list(providers)
        self.http = http
        self.max_retry_wait_s = max_retry_wait_s

    async def generate_stream(self, request: LLMRequest) -> AsyncIterator[StreamEvent]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        errors: list[tuple[str, str]] = []
        retry_budget_s = self.max_retry_wait_s
        for provider in self.providers:
            while True:
                parts: list[str] = []
                committed = False
                try:
                    async with aclosing(provider.stream(self.http, request)) as deltas:
                        async for delta in deltas:
                            if isinstance(delta, str):
                                parts.append(delta)
                                committed = True
                                yield Chunk(delta)
                            else:
                                # a call's name alone shows nothing yet: no commitment
                                committed = committed or bool(delta.arguments)
                                yield Chunk("", delta)
                except ProviderError as exc:
                    if committed:
                        yield StreamFailed("".join(parts), str(exc))
                        return
                    wait_s = exc.retry_after_s
                    retryable = exc.status in RETRYABLE_STATUSES and wait_s is not None
                    if retryable and wait_s <= retry_budget_s:
                        retry_budget_s -= wait_s
                        await asyncio.sleep(wait_s)
                        continue
                    errors.append((provider.name, str(exc)))
                    break
                latency_ms = (loop.time() - started) * 1000
                yield StreamDone("".join(parts), provider.name, provider.model, latency_ms)
                return
        raise AllProvidersFailed(errors)
