"""The reference app's HTTP surface that a case.yaml cannot express: a second turn on an existing
thread, a client without ``Accept: text/event-stream``, and misuse (bad bodies, an unknown
thread, a store that fails before the run starts). Driven over httpx's ASGI transport."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from reference_harness import TimedReplay
from streambench.reference.app import create_app
from streambench.reference.config import ReferenceConfig
from streambench.reference.store import Store, StoreError
from streambench.replay import build_plan, virtual_time
from streambench.runner.cases import load_case
from streambench.sse import SSEDecoder
from streambench.transcript import load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HELLO = load_case(FIXTURES / "chat-hello")
SSE = {"accept": "text/event-stream"}


def _client(turns: int = 1, store: Store | None = None) -> httpx.AsyncClient:
    plans = [build_plan(load(HELLO.upstream[0])) for _ in range(turns)]
    config = ReferenceConfig(transport=TimedReplay(plans), db_path=":memory:", store=store)
    transport = httpx.ASGITransport(app=create_app(config))
    return httpx.AsyncClient(transport=transport, base_url="http://reference")


def _events(response: httpx.Response) -> list[tuple[str, Any]]:
    return [(e.event, json.loads(e.data)) for e in SSEDecoder().feed(response.content)]


@virtual_time
async def test_a_second_turn_with_thread_id_continues_the_thread() -> None:
    async with _client(turns=2) as client:
        first = _events(await client.post("/messages", json=HELLO.request_body(), headers=SSE))
        thread = first[0][1]
        assert thread["is_new"] is True
        body = {**HELLO.request_body(), "thread_id": thread["id"], "content": "And again"}
        second = _events(await client.post("/messages", json=body, headers=SSE))
        assert second[0] == ("thread", {"id": thread["id"], "is_new": False})
        assert second[-1][0] == "done" and second[-1][1]["content"] == HELLO.expect_text
        rows = (await client.get(f"/threads/{thread['id']}/messages")).json()["messages"]
    assert [(r["role"], r["content"]) for r in rows] == [
        ("user", HELLO.request["content"]),
        ("assistant", HELLO.expect_text),
        ("user", "And again"),
        ("assistant", HELLO.expect_text),
    ]


@virtual_time
async def test_without_accept_event_stream_the_same_run_is_one_json_answer() -> None:
    async with _client() as client:
        response = await client.post("/messages", json=HELLO.request_body())
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert response.status_code == 200, answer
    assert answer["assistant_message"]["content"] == HELLO.expect_text
    assert answer["statuses"][0] == "Thinking..." and "error" not in answer


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "request body is not valid JSON"),
        (b'{"content": "caf\xe9"}', 400, "request body is not valid JSON"),  # latin-1, not UTF-8
        (b'{"content": 3}', 400, "content"),
        (b'{"content": "hi", "thread_id": "nope"}', 404, "thread_id: no thread 'nope'"),
    ],
    ids=["bad-json", "non-utf8", "content-not-a-string", "unknown-thread"],
)
async def test_misuse_gets_one_json_error_and_no_upstream_call(
    body: bytes, status: int, error: str
) -> None:
    async with _client() as client:
        response = await client.post("/messages", content=body, headers=SSE)
    assert response.status_code == status
    assert error in response.json()["error"]


class StoreDown(Store):
    def create_thread(self) -> str:
        raise StoreError("persisting failed: database is locked")


async def test_a_store_failure_before_the_run_is_a_503_naming_it() -> None:
    async with _client(store=StoreDown(":memory:")) as client:
        response = await client.post("/messages", json=HELLO.request_body(), headers=SSE)
    assert response.status_code == 503
    assert response.json() == {"error": "persisting failed: database is locked"}
