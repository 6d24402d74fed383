"""The reference stack over real loopback sockets: the reference app (uvicorn) streams from a
replay server (uvicorn) as its Anthropic upstream; what the client does reaches the upstream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from streambench._server import running_server
from streambench.reference.app import create_app
from streambench.reference.config import ReferenceConfig
from streambench.replay import ReplayApp, ReplayPlan, build_plan, replay_app
from streambench.replay.transports import RequestRecord
from streambench.runner.cases import load_case
from streambench.sse import SSEDecoder, SSEEvent
from streambench.transcript import load

CHAT = load_case(Path(__file__).resolve().parents[1] / "fixtures" / "chat-hello")
# One event every 100 ms: the upstream stream is still in flight well after the first chunk.
SLOW = "const:ttfb=0,gap=100"
DEADLINE_S = 10.0


@dataclass
class Stack:
    reference_url: str
    upstream: ReplayApp
    plan: ReplayPlan

    def upstream_record(self) -> RequestRecord:
        """The upstream request, once the replay server has seen it end (polled, bounded)."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            records = self.upstream.log.requests
            if records and (records[0].client_closed or records[0].completed):
                return records[0]
            time.sleep(0.01)
        raise AssertionError(f"the upstream request did not end within {DEADLINE_S} s: {records}")


@pytest.fixture
def stack() -> Iterator[Stack]:
    plan = build_plan(load(CHAT.upstream[0]), "events", SLOW)
    upstream = replay_app([plan], cycle=False)
    with running_server(upstream) as upstream_url:
        config = ReferenceConfig(
            providers=("anthropic",),
            anthropic_base_url=upstream_url,
            anthropic_api_key="test",
            db_path=":memory:",
        )
        with running_server(create_app(config)) as reference_url:
            yield Stack(reference_url, upstream, plan)


def sse_events(response: httpx.Response) -> Iterator[SSEEvent]:
    decoder = SSEDecoder()
    for data in response.iter_raw():
        yield from decoder.feed(data)


def post_messages(client: httpx.Client, stack: Stack) -> httpx.Response:
    request = client.build_request(
        "POST",
        f"{stack.reference_url}/messages",
        json=CHAT.request_body(),
        headers={"accept": "text/event-stream"},
    )
    return client.send(request, stream=True)


def test_a_client_disconnect_mid_stream_closes_the_upstream_connection(stack: Stack) -> None:
    with httpx.Client(timeout=DEADLINE_S) as client:
        response = post_messages(client, stack)
        assert response.status_code == 200
        seen = []
        for event in sse_events(response):
            seen.append(event.event)
            if event.event == "chunk":
                break
        response.close()  # the browser tab goes away after the first text
    assert seen[0] == "thread" and seen[-1] == "chunk"
    record = stack.upstream_record()
    assert record.client_closed is True
    assert record.completed is False
    assert 0 < record.delivered_bytes < len(stack.plan.body)


def test_a_client_that_reads_to_the_end_lets_the_upstream_complete(stack: Stack) -> None:
    with httpx.Client(timeout=DEADLINE_S) as client:
        response = post_messages(client, stack)
        names = [event.event for event in sse_events(response)]
        response.close()
    assert names[-1] == "done"
    record = stack.upstream_record()
    assert record.completed is True and record.client_closed is False
    assert record.delivered_bytes == len(stack.plan.body)
