"""The one pacing loop (serve, fake-provider, the replay transports) and the servers that use
it: absolute times (no drift), and more connections than select() can hold."""

from __future__ import annotations

import asyncio
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streambench._pacing import paced, paced_sync
from streambench.record.fake_provider import FakeProvider, _schedule
from streambench.replay import build_plan, run_virtual
from streambench.transcript import save, synth

CONNECTIONS = 1100  # above select()'s FD_SETSIZE (1024), where serve used to die


def test_a_slow_consumer_delays_one_item_not_every_later_one() -> None:
    async def consume() -> list[float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        seen = []
        async for t_ms, _ in paced([(10.0, "a"), (20.0, "b"), (30.0, "c"), (40.0, "d")]):
            seen.append((loop.time() - start) * 1000)
            if t_ms == 10.0:
                await asyncio.sleep(0.025)  # the consumer stalls past b's and c's times
        return seen

    # b and c are already due when the consumer comes back; d keeps its own time
    assert run_virtual(consume()) == pytest.approx([10.0, 35.0, 35.0, 40.0])


def test_sync_pacing_keeps_absolute_times() -> None:
    start = time.monotonic()
    arrivals = []
    for _, item in paced_sync([(0.0, 0), (30.0, 1), (60.0, 2)]):
        arrivals.append(time.monotonic() - start)
        if item == 0:
            time.sleep(0.02)  # work between items is not added to the next gap
    assert arrivals[2] == pytest.approx(0.06, abs=0.015)


def test_fake_provider_schedules_each_frame_at_its_absolute_time() -> None:
    frames = synth.render_frames("anthropic-messages", text="one two three four five six")
    provider = FakeProvider(rate=100, ttfb_ms=50)
    times = [t for t, _ in _schedule(frames, provider)]
    tokens = 0
    for t_ms, frame in zip(times, frames, strict=True):
        tokens += frame.tokens
        assert t_ms == pytest.approx(50 + tokens * 10)
    assert tokens > 0


def _lift_open_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"the hard open-file limit ({hard}) is below {needed}")
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def _fetch(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    body = await reader.read()  # until the server closes: the whole response
    writer.close()
    return body


async def _fetch_all(port: int, n: int) -> list[bytes | BaseException]:
    return await asyncio.gather(*(_fetch(port) for _ in range(n)), return_exceptions=True)


@pytest.mark.slow
def test_serve_holds_more_connections_than_select_can(tmp_path: Path) -> None:
    _lift_open_file_limit(2 * CONNECTIONS + 200)  # this process holds the client ends
    body = synth.render("anthropic-messages", text="held open")
    transcript = synth.make_transcript("anthropic-messages", body, request_body={"stream": True})
    path = tmp_path / "t.yaml"
    save(transcript, path)
    latency = "const:ttfb=1500,gap=1"  # every stream still open while the others connect
    last_chunk = build_plan(transcript, latency=latency).chunks[-1].data
    command = "from streambench.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", command, "serve", str(path), "--latency", latency],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().rsplit(":", 1)[-1])
        answers = asyncio.run(_fetch_all(port, CONNECTIONS))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    failed = [a for a in answers if isinstance(a, BaseException) or last_chunk not in a]
    assert not failed, f"{len(failed)} of {CONNECTIONS} streams incomplete: {failed[:3]}"
    assert proc.stderr is not None
    assert "filedescriptor out of range" not in (stderr := proc.stderr.read())
    assert "Traceback" not in stderr
