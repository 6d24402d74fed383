"""Drive the reference app in process: replayed upstream, virtual time, raw ASGI calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from streambench.reference.app import create_app
from streambench.reference.config import ReferenceConfig
from streambench.replay import ReplayPlan, ReplayTransport
from streambench.sse import SSEDecoder, SSEEvent


class TimedReplay(httpx.AsyncBaseTransport):
    """A ReplayTransport that also notes the loop time each upstream request was sent."""

    def __init__(self, plans: Sequence[ReplayPlan]) -> None:
        self.replay = ReplayTransport(list(plans), cycle=False)
        self.sent_at: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent_at.append(asyncio.get_running_loop().time())
        return await self.replay.handle_async_request(request)


@dataclass
class Run:
    events: list[tuple[float, SSEEvent]]
    upstream: TimedReplay
    app_state: Any = None
    data: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data = [(e.event, json.loads(e.data)) for _, e in self.events]

    def of(self, name: str) -> list[Any]:
        return [d for n, d in self.data if n == name]

    def time_of(self, name: str) -> float:
        return next(t for t, e in self.events if e.event == name)

    @property
    def streamed_text(self) -> str:
        return "".join(d["content"] for d in self.of("chunk"))

    @property
    def terminal(self) -> tuple[str, Any]:
        return self.data[-1]


async def post_sse(
    app: Any,
    body: dict[str, Any],
    disconnect_when: Callable[[SSEEvent], bool] | None = None,
) -> list[tuple[float, SSEEvent]]:
    """POST ``body`` to /messages as a browser would; optionally hang up after an event."""
    loop = asyncio.get_running_loop()
    decoder = SSEDecoder()
    events: list[tuple[float, SSEEvent]] = []
    hung_up = asyncio.Event()
    request_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}
        await hung_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        for event in decoder.feed(message.get("body", b"")):
            events.append((loop.time(), event))
            if disconnect_when is not None and disconnect_when(event):
                hung_up.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/messages",
        "raw_path": b"/messages",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"accept", b"text/event-stream"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return events


async def run_reference(
    plans: Sequence[ReplayPlan],
    body: dict[str, Any],
    disconnect_when: Callable[[SSEEvent], bool] | None = None,
    **config: Any,
) -> Run:
    upstream = TimedReplay(plans)
    settings = {"db_path": ":memory:", "max_retry_wait_s": 0.0, **config}
    app = create_app(ReferenceConfig(transport=upstream, **settings))
    events = await post_sse(app, body, disconnect_when)
    return Run(events, upstream, app.state)
