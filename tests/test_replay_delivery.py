"""Delivery paths: the async iterator on virtual time, httpx/httpx2 interception, ASGI app, CLI."""

from __future__ import annotations

import asyncio
import contextvars
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anthropic
import httpx
import pytest
from tests.conftest import cli_exit_code

from streambench._server import running_server
from streambench.replay import (
    ReplayTransport,
    build_plan,
    mock_upstream,
    replay_app,
    run_virtual,
    virtual_time,
)
from streambench.sse import decode_all
from streambench.transcript import Transcript, save, synth

TEXT = 'Here is {"code_edits": []} and \\u00e9 — done.'


def transcript(api: str = "anthropic-messages", text: str = TEXT) -> Transcript:
    return synth.make_transcript(api, synth.render(api, text=text), request_body={"stream": True})


def test_aiter_on_virtual_time_sees_the_planned_clock() -> None:
    plan = build_plan(transcript(), chunking="bytes:40", latency="tokens:rate=5,ttfb=2000")

    async def consume() -> list[tuple[float, float, bytes]]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        return [((loop.time() - start) * 1000, t_ms, data) async for t_ms, data in plan.aiter()]

    seen = run_virtual(consume())
    assert plan.duration_ms > 3000  # a stream that would take seconds in real time
    assert [data for _, _, data in seen] == [c.data for c in plan.chunks]
    for observed_ms, planned_ms, _ in seen:
        assert observed_ms == pytest.approx(planned_ms, abs=0.01)


async def test_virtual_time_on_the_running_loop_with_an_async_client() -> None:
    plan = build_plan(transcript(), latency="const:ttfb=500,gap=250")
    transport = ReplayTransport([plan])
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    with virtual_time():
        start = loop.time()
        async with (
            httpx.AsyncClient(transport=transport) as client,
            client.stream("POST", "http://upstream.test/v1/messages") as response,
        ):
            async for _ in response.aiter_raw():
                arrivals.append((loop.time() - start) * 1000)
    assert arrivals == pytest.approx([c.t_ms for c in plan.chunks], abs=0.01)
    assert transport.requests[0].completed


RUN_NAME: contextvars.ContextVar[str] = contextvars.ContextVar("run_name", default="unset")


class SlowShutdownExecutor(ThreadPoolExecutor):
    """An executor whose shutdown takes real time, as one with a busy worker does."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        time.sleep(0.2)
        super().shutdown(wait, cancel_futures=cancel_futures)


def test_each_virtual_run_starts_at_0_in_a_fresh_context_whatever_the_last_one_left() -> None:
    fired: list[float] = []

    async def leave_a_timer_and_a_generator() -> float:
        loop = asyncio.get_running_loop()
        RUN_NAME.set("first")
        loop.set_default_executor(SlowShutdownExecutor())
        loop.call_later(5, lambda: fired.append(loop.time()))  # a timer nobody cancels

        async def ticks() -> AsyncIterator[int]:
            yield 1
            await asyncio.sleep(60)
            yield 2

        async for _ in ticks():
            break  # an async generator left suspended
        await asyncio.sleep(2)
        return loop.time()

    async def measure() -> tuple[float, str, list[int]]:
        loop = asyncio.get_running_loop()
        start = loop.time()

        async def numbers() -> AsyncIterator[int]:
            for n in range(3):
                await asyncio.sleep(1)
                yield n

        seen = [n async for n in numbers()]
        await asyncio.sleep(10)
        return start, RUN_NAME.get(), seen

    assert run_virtual(leave_a_timer_and_a_generator) == pytest.approx(2.0)
    for _ in range(2):  # after a run that left a live timer, and after a clean one
        assert run_virtual(measure) == (0.0, "unset", [0, 1, 2])
    assert fired == []  # the first run's timer never fires, in its shutdown or a later run
    assert RUN_NAME.get() == "unset"


def test_a_virtual_loop_closes_abandoned_generators_without_waking_itself_and_threads_wake_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streambench.replay.vtime import VirtualTimeLoop

    wakes: list[int] = []
    real_wake = asyncio.SelectorEventLoop._write_to_self  # type: ignore[attr-defined]

    def counted(loop: asyncio.AbstractEventLoop) -> None:
        wakes.append(1)
        real_wake(loop)

    monkeypatch.setattr(asyncio.SelectorEventLoop, "_write_to_self", counted)
    closed: list[int] = []

    async def abandon_generators() -> float:
        async def lines() -> AsyncIterator[int]:
            try:
                yield 1
                yield 2
            finally:
                closed.append(1)

        for _ in range(20):  # as a client that stops reading at the terminal event
            async for _ in lines():
                break
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return asyncio.get_running_loop().time()

    assert run_virtual(abandon_generators) == 0.0
    assert closed == [1] * 20  # each finalizer's aclose still ran, on the loop
    assert wakes == []  # and none wrote to the loop's wake-up pipe

    async def answered_by_a_thread() -> str:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualTimeLoop)
        # the loop waits for real (a thread is working); the thread's answer must wake it
        return await loop.run_in_executor(None, lambda: time.sleep(0.05) or "woken")

    assert run_virtual(answered_by_a_thread) == "woken"
    assert wakes  # another thread's call still woke the loop

    async def answered_by_a_signal() -> str:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        # nothing is scheduled: the loop waits for outside I/O for real, on this thread
        previous = signal.signal(
            signal.SIGALRM, lambda *_: loop.call_soon_threadsafe(done.set_result, "signalled")
        )
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        # if the handler's call does not wake the loop, another thread's does, 5 s later
        fallback = threading.Timer(
            5, lambda: loop.call_soon_threadsafe(lambda: done.done() or done.set_result("stuck"))
        )
        fallback.start()
        try:
            return await done
        finally:
            fallback.cancel()
            signal.signal(signal.SIGALRM, previous)

    started = time.monotonic()
    assert run_virtual(answered_by_a_signal) == "signalled"  # a handler on the loop's thread
    assert time.monotonic() - started < 4  # woke it at once, not the fallback 5 s later


@virtual_time
async def _timed_sleep() -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.sleep(30)
    return loop.time() - start


async def test_virtual_time_decorator() -> None:
    assert await _timed_sleep() == pytest.approx(30.0)


async def test_mock_upstream_answers_the_sdks_and_plain_httpx() -> None:
    plans = [build_plan(transcript(text="first")), build_plan(transcript(text="second"))]
    with mock_upstream(plans, base_url="https://api.anthropic.com") as replay, virtual_time():
        client = anthropic.AsyncAnthropic(api_key="test", max_retries=0)
        stream = await client.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        deltas = [e.delta async for e in stream if e.type == "content_block_delta"]
        text = "".join(d.text for d in deltas if d.type == "text_delta")
        async with httpx.AsyncClient() as http:
            second = await http.post("https://api.anthropic.com/v1/messages", json={"n": 2})
    assert text == "first"
    assert "second" in "".join(e.data for e in decode_all(second.content))
    assert [r.json for r in replay.requests][1] == {"n": 2}
    assert replay.requests[0].json["model"] == "m"


def test_mock_upstream_lets_other_hosts_through_and_restores_the_transports() -> None:
    originals = (httpx.HTTPTransport.handle_request, httpx.AsyncHTTPTransport.handle_async_request)
    outside, replayed = build_plan(transcript(text="real server")), build_plan(transcript())
    with (
        running_server(replay_app([outside], speed=1e6)) as url,
        mock_upstream([replayed], base_url="https://api.x") as replay,
        httpx.Client() as http,
    ):
        answered = http.post("https://api.x/v1/messages", json={}).content
        passed = http.post(url, json={}).content
    assert answered == replayed.body and passed == outside.body
    assert len(replay.requests) == 1
    assert (httpx.HTTPTransport.handle_request, httpx.AsyncHTTPTransport.handle_async_request) == (
        originals
    )


def test_replay_app_cycles_plans_and_logs_requests() -> None:
    from starlette.testclient import TestClient

    plans = [build_plan(transcript(text="one")), build_plan(transcript(text="two"))]
    app = replay_app(plans, speed=1e6)
    client = TestClient(app)
    bodies = [client.post(f"/any/{i}", json={"i": i}).content for i in range(3)]
    assert bodies == [plans[0].body, plans[1].body, plans[0].body]
    assert [r.plan_index for r in app.state.requests] == [0, 1, 0]
    assert app.state.requests[2].json == {"i": 2} and app.state.requests[2].url == "/any/2"


# ----------------------------------------------------------------------------------- CLI


def run(argv: list[str], capsysbinary: pytest.CaptureFixture[bytes]) -> tuple[int, bytes, str]:
    code = cli_exit_code(argv)
    out, err = capsysbinary.readouterr()
    return code, out, err.decode()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save(transcript(), tmp_path / "t.yaml")


def test_cli_replay_raw_writes_exactly_the_delivered_bytes(
    saved: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    args = ["replay", str(saved), "--raw", "-c", "deltas:1+bytes:3", "-f", "truncate@event=6"]
    code, out, _ = run(args, capsysbinary)
    plan = build_plan(transcript(), chunking="deltas:1+bytes:3", faults=["truncate@event=6"])
    assert code == 0 and out == plan.body


def test_cli_replay_timeline(saved: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, _ = run(["replay", str(saved), "-f", "disconnect@event=4"], capsysbinary)
    text = out.decode()
    assert code == 0 and "content_block_delta" in text and "ending: disconnect" in text


@pytest.mark.parametrize(
    ("option", "spec"),
    [("-c", "bytes:0"), ("-f", "boom@event=1"), ("-f", "disconnect@event=999"), ("-l", "x:1")],
)
def test_cli_bad_spec_exits_2_with_one_line(
    saved: Path, capsysbinary: pytest.CaptureFixture[bytes], option: str, spec: str
) -> None:
    code, out, err = run(["replay", str(saved), option, spec], capsysbinary)
    assert code == 2 and out == b""
    assert err.count("\n") == 1 and err.startswith("streambench: error:") and repr(spec) in err


def test_cli_serve_prints_url_answers_and_stops_on_sigterm(saved: Path) -> None:
    command = "from streambench.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", command, "serve", str(saved), "--speed", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" at ")[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        response = httpx.post(f"{url}/v1/messages", json={"x": 1}, timeout=10)
        assert response.content == build_plan(transcript()).body
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    # uvicorn shuts down gracefully, then re-raises the captured signal (exit status -15)
    assert code in (0, -signal.SIGTERM)
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_serve_notes_a_client_that_leaves_mid_stream() -> None:
    plan = build_plan(transcript(), latency="const:ttfb=10,gap=60000")  # a minute per event
    app = replay_app([plan])
    with running_server(app) as url, httpx.Client() as http:
        with http.stream("POST", url) as response:
            next(response.iter_raw())
        record = app.state.requests[0]
        deadline = time.monotonic() + 10
        while not record.client_closed and time.monotonic() < deadline:
            time.sleep(0.01)
    assert record.client_closed and not record.completed
    assert record.delivered_bytes == len(plan.chunks[0].data)
