"""The one pacing loop (serve, fake-provider, the replay transports) and the servers that use
it: absolute times (no drift), and more connections than select() can hold."""

from __future__ import annotations

import asyncio
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streambench._pacing import Pacer, paced, paced_sync, pacer
from streambench._server import PACING_SLACK_S, body_writer, precise_event_loop, running_server
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


class _Client:
    """An ASGI ``send`` and ``receive`` pair that notes when each body went out (loop time,
    ms from the client's creation); ``stall_s`` makes the send of one body wait that long
    (a full write buffer), ``leave_at_s`` makes the client go away then."""

    def __init__(self, stall: bytes = b"", stall_s: float = 0.0, leave_at_s: float = 0.0) -> None:
        self.loop = asyncio.get_running_loop()
        self.created = self.loop.time()
        self.sent: list[tuple[float, bytes]] = []
        self.stall, self.stall_s, self.leave_at_s = stall, stall_s, leave_at_s

    async def send(self, message: dict) -> None:  # type: ignore[type-arg]
        if message["body"] == self.stall:
            await asyncio.sleep(self.stall_s)
        self.sent.append((round((self.loop.time() - self.created) * 1000, 3), message["body"]))

    async def receive(self) -> dict:  # type: ignore[type-arg]
        if not self.leave_at_s:
            await asyncio.Future()  # never: the client stays
        await asyncio.sleep(self.leave_at_s)
        return {"type": "http.disconnect"}


def test_the_pacer_sends_every_stream_at_its_absolute_times() -> None:
    async def main() -> tuple[list[tuple[float, bytes]], ...]:
        first = _Client()
        second_task = asyncio.create_task(_late_stream())
        done = await pacer().send_bodies(first.send, [(0.0, b"a"), (10.0, b"b"), (30.0, b"c")])
        assert done is True
        return first.sent, await second_task

    async def _late_stream() -> list[tuple[float, bytes]]:
        await asyncio.sleep(0.005)  # a stream starting 5 ms later: its own start
        client = _Client()
        await pacer().send_bodies(client.send, [(10.0, b"x"), (10.0, b"y"), (20.0, b"z")])
        return client.sent

    first, second = run_virtual(main())
    assert first == [(0.0, b"a"), (10.0, b"b"), (30.0, b"c")]
    assert second == [(10.0, b"x"), (10.0, b"y"), (20.0, b"z")]


def test_a_send_that_waits_delays_its_stream_only_and_keeps_later_times() -> None:
    async def main() -> tuple[list[tuple[float, bytes]], list[tuple[float, bytes]]]:
        slow = _Client(stall=b"b", stall_s=0.025)  # b's write waits 25 ms (flow control)
        other = _Client()
        noted: list[float] = []
        schedule = [(0.0, b"a"), (10.0, b"b"), (20.0, b"c"), (50.0, b"d")]
        await asyncio.gather(
            pacer().send_bodies(slow.send, schedule, on_sent=lambda t, _: noted.append(t)),
            pacer().send_bodies(other.send, [(15.0, b"x"), (30.0, b"y")]),
        )
        assert noted == [0.0, 10.0, 20.0, 50.0]  # on_sent once per body, after its send
        return slow.sent, other.sent

    slow, other = run_virtual(main())
    # c was due during b's wait: it goes at once after; d keeps its own time
    assert slow == [(0.0, b"a"), (35.0, b"b"), (35.0, b"c"), (50.0, b"d")]
    assert other == [(15.0, b"x"), (30.0, b"y")]


def test_the_pacer_stops_when_the_client_goes_away_or_the_sender_is_cancelled() -> None:
    schedule = [(t, b"%d" % t) for t in range(0, 100, 10)]

    async def main() -> tuple[bool, list[tuple[float, bytes]], list[tuple[float, bytes]]]:
        leaving = _Client(leave_at_s=0.035)
        completed = await pacer().send_bodies(leaving.send, schedule, receive=leaving.receive)
        cancelled = _Client()
        task = asyncio.create_task(pacer().send_bodies(cancelled.send, schedule))
        await asyncio.sleep(0.025)
        task.cancel()
        await asyncio.sleep(0.1)  # nothing more goes out
        return completed, leaving.sent, cancelled.sent

    completed, leaving, cancelled = run_virtual(main())
    assert completed is False
    assert [t for t, _ in leaving] == [0.0, 10.0, 20.0, 30.0]
    assert [t for t, _ in cancelled] == pytest.approx([0.0, 10.0, 20.0], abs=0.01)


def test_a_send_that_raises_ends_its_stream_with_that_error() -> None:
    async def broken_send(message: dict) -> None:  # type: ignore[type-arg]
        if message["body"] == b"b":
            raise ConnectionResetError("peer gone")

    async def main() -> None:
        await pacer().send_bodies(broken_send, [(0.0, b"a"), (10.0, b"b"), (20.0, b"c")])

    with pytest.raises(ConnectionResetError, match="peer gone"):
        run_virtual(main())


def test_with_slack_bodies_due_within_one_step_share_a_wake_up_and_none_goes_early() -> None:
    async def main() -> list[list[tuple[float, bytes]]]:
        step = Pacer(asyncio.get_running_loop(), slack_s=0.005)  # a 5 ms grid
        clients = [_Client() for _ in range(3)]
        schedules = [
            [(1.0, b"a"), (7.0, b"b")],
            [(2.0, b"x")],
            [(4.9, b"y"), (5.1, b"z"), (10.0, b"w")],
        ]
        await asyncio.gather(
            *(step.send_bodies(c.send, s) for c, s in zip(clients, schedules, strict=True))
        )
        return [c.sent for c in clients]

    # due at 1, 2 and 4.9 ms: one wake-up at 5 ms; 5.1 and 7 at 10 (late by < 5 ms, never early)
    assert run_virtual(main()) == [
        [(5.0, b"a"), (10.0, b"b")],
        [(5.0, b"x")],
        [(5.0, b"y"), (10.0, b"z"), (10.0, b"w")],
    ]


def test_the_servers_loop_paces_with_its_slack_and_never_early() -> None:
    loop = precise_event_loop()

    async def main() -> tuple[float, list[tuple[float, float]]]:
        loop = asyncio.get_running_loop()
        due_and_sent: list[tuple[float, float]] = []
        start = loop.time()

        async def send(message: dict) -> None:  # type: ignore[type-arg]
            due_and_sent.append((start + float(message["body"]) / 1000, loop.time()))

        await pacer().send_bodies(send, [(t, b"%g" % t) for t in (0.3, 1.1, 1.2, 2.7)])
        return pacer().slack_s, due_and_sent

    try:
        slack_s, due_and_sent = loop.run_until_complete(main())
    finally:
        loop.close()
    assert slack_s == PACING_SLACK_S > 0
    assert len(due_and_sent) == 4
    # a lower bound only (a busy machine sends later): no body before its time
    for due, sent in due_and_sent:
        assert sent >= due - 1e-6


def test_bodies_the_write_refuses_go_through_send_in_order() -> None:
    async def main() -> tuple[list[bytes], list[tuple[float, bytes]], list[float]]:
        client = _Client()
        written: list[bytes] = []

        def write(body: bytes) -> bool:
            if body == b"b":  # a full write buffer: the ASGI send decides
                return False
            written.append(body)
            return True

        noted: list[float] = []
        schedule = [(0.0, b"a"), (10.0, b"b"), (20.0, b"c")]
        await pacer().send_bodies(
            client.send, schedule, on_sent=lambda t, _: noted.append(t), write=write
        )
        return written, client.sent, noted

    written, sent, noted = run_virtual(main())
    assert written == [b"a", b"c"]
    assert sent == [(10.0, b"b")]
    assert noted == [0.0, 10.0, 20.0]


BODIES = [b"data: one\n\n", b"", b"data: " + "\u00e9".encode() * 300 + b"\n\n"]


async def _bodies_app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
    """Streams BODIES with uvicorn's own ``send`` (/send) or with :func:`body_writer` (/write),
    the start and the end through ``send`` either way."""
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]}
    await send(start)  # type: ignore[operator]
    if scope["path"] == "/write":
        write = body_writer(send)  # type: ignore[arg-type]
        assert write is not None
        for body in BODIES:
            assert write(body)
        flow = send.__self__.flow  # type: ignore[attr-defined]
        flow.pause_writing()  # a full write buffer: the writer refuses, writing nothing
        assert not write(b"refused")
        flow.resume_writing()
    else:
        for body in BODIES:
            await send({"type": "http.response.body", "body": body, "more_body": True})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"", "more_body": False})  # type: ignore[operator]


def _raw_response(url: str, path: str) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".encode())
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_the_body_writer_puts_exactly_uvicorns_bytes_on_the_wire() -> None:
    with running_server(_bodies_app) as url:  # type: ignore[arg-type]
        answers = [_raw_response(url, path) for path in ("/send", "/write")]
    # the Date header may tick between the two
    own, written = (
        b"\r\n".join(h for h in a.split(b"\r\n") if not h.startswith(b"date:")) for a in answers
    )
    assert written == own
    assert own.endswith(
        b"\r\n\r\n" + b"".join(b"%x\r\n%b\r\n" % (len(b), b) for b in BODIES if b) + b"0\r\n\r\n"
    )
    assert body_writer(_Client.send) is None  # not uvicorn's own send: the ASGI path


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
