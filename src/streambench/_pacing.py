"""Pacing: hand out items at planned offsets from a start, the one loop every sender uses.

Offsets are absolute (from the start), never "sleep after each item": a slow write or a
busy loop delays one item, not every item after it. ``plan.aiter`` and the httpx replay
transport (async and sync) pace through :func:`paced`; the real servers (``serve`` and
``fake-provider``) through :class:`Pacer`, the same times with one timer for every stream
(on the servers' loop, on a 0.5 ms grid: a body goes at most that late, never early).
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


async def paced(
    schedule: Iterable[tuple[float, T]], speed: float = 1.0
) -> AsyncIterator[tuple[float, T]]:
    """Yield each ``(t_ms, item)`` at ``start + t_ms / speed`` on the running loop's clock
    (virtual on a virtual-time loop); items already due go out without waiting. A virtual-time
    loop that can prove nothing else would run meanwhile moves its clock at once instead of
    sleeping (same times, no timer, no loop cycle)."""
    loop = asyncio.get_running_loop()
    jump = getattr(loop, "jump_if_idle", None)
    now = loop.time
    start = now()
    for t_ms, item in schedule:
        delay = start + t_ms / 1000.0 / speed - now()
        if delay > 0 and (jump is None or not jump(delay)):
            await asyncio.sleep(delay)
        yield t_ms, item


def paced_sync(
    schedule: Iterable[tuple[float, T]], speed: float = 1.0
) -> Iterator[tuple[float, T]]:
    """:func:`paced` for synchronous callers: real time (``time.monotonic``)."""
    start = time.monotonic()
    for t_ms, item in schedule:
        delay = start + t_ms / 1000.0 / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield t_ms, item


Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]
# Writes one body straight to the connection: True when written, False when it cannot now
# (the ASGI send then does it, and waits or ends as the server decides).
Write = Callable[[bytes], bool]


class _Stream:
    """One response body being paced by a :class:`Pacer`."""

    __slots__ = ("done", "items", "on_sent", "send", "speed", "start", "t_ms", "waiting", "write")

    def __init__(
        self,
        send: Send,
        write: Write | None,
        items: Iterator[tuple[float, bytes]],
        speed: float,
        start: float,
        on_sent: Callable[[float, bytes], None] | None,
        done: asyncio.Future[bool],
    ) -> None:
        self.send = send
        self.write = write
        self.items = items
        self.speed = speed
        self.start = start
        self.on_sent = on_sent
        self.done = done
        self.t_ms = 0.0
        self.waiting: bytes | None = None  # the next body, due at start + t_ms / speed


class Pacer:
    """Paces the response bodies of every stream on one loop with one timer.

    A task per stream waking per event costs more than the send itself at thousands of
    streams; here each wake-up sends every body that is due (across streams) by driving the
    ASGI ``send`` coroutines to completion directly. A ``send`` that does suspend (the
    transport's write buffer is full) finishes in a task, and its stream waits for it.

    ``slack_s`` > 0 lets a body go up to that long after its time, never before: wake-ups
    fall on a grid of that step, so the bodies of every stream due within one step share
    one wake-up (on a real loop, waking up costs more than a send). 0: each at its time.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, slack_s: float = 0.0) -> None:
        self._loop = loop
        self.slack_s = slack_s
        # wake-up time -> the streams whose next body goes then, first scheduled first
        self._due: dict[float, list[_Stream]] = {}
        self._times: list[float] = []  # heap of the wake-up times in _due
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    async def send_bodies(
        self,
        send: Send,
        schedule: Iterable[tuple[float, bytes]],
        speed: float = 1.0,
        on_sent: Callable[[float, bytes], None] | None = None,
        receive: Receive | None = None,
        write: Write | None = None,
    ) -> bool:
        """Send each ``(t_ms, body)`` as an ``http.response.body`` message (``more_body``) at
        ``start + t_ms / speed``; ``on_sent(t_ms, body)`` after each. With ``receive`` (whose
        request body was read), it stops as soon as the client goes away, even in a long gap:
        False then, True when every body was sent. Cancelling it stops it too. ``write``
        (from the server, e.g. :func:`streambench._server.body_writer`) puts a body on the
        wire without an ASGI message; a body it cannot write now goes through ``send``."""
        loop = self._loop
        done: asyncio.Future[bool] = loop.create_future()
        stream = _Stream(send, write, iter(schedule), speed, loop.time(), on_sent, done)
        watcher = None
        if receive is not None:
            watcher = loop.create_task(_until_disconnect(receive))
            watcher.add_done_callback(lambda _: done.done() or done.set_result(False))
        try:
            self._advance(stream, loop.time())
            return await done
        finally:
            stream.items = iter(())  # stopped early: an entry left queued sends nothing
            stream.waiting = None
            if watcher is not None:
                watcher.cancel()

    def _advance(self, stream: _Stream, now: float) -> None:
        """Send the stream's bodies due by ``now`` (read once per wake-up: one clock read per
        wake-up, not per body; a body that falls due meanwhile goes with the next one), then
        queue its next one (or finish it)."""
        while True:
            body = stream.waiting
            if body is None:
                item = next(stream.items, None)
                if item is None:
                    if not stream.done.done():
                        stream.done.set_result(True)
                    return
                stream.t_ms, body = item
                due = stream.start + stream.t_ms / 1000.0 / stream.speed
                if due > now:
                    stream.waiting = body
                    self._push(due, stream)
                    return
            stream.waiting = None
            write = stream.write
            if (write is None or not write(body)) and not self._send(stream, body):
                return
            if stream.on_sent is not None:
                stream.on_sent(stream.t_ms, body)

    def _send(self, stream: _Stream, body: bytes) -> bool:
        """Drive the stream's ASGI ``send`` of ``body``: True when it is done, False when the
        stream stops (its error) or waits (flow control: a task finishes it, then goes on)."""
        coro = stream.send({"type": "http.response.body", "body": body, "more_body": True})
        if not asyncio.iscoroutine(coro):  # another awaitable: it cannot be driven here
            coro = _awaited(coro)
        try:
            yielded = coro.send(None)
        except StopIteration:
            return True
        except Exception as exc:  # the stream's awaiter re-raises it
            if not stream.done.done():
                stream.done.set_exception(exc)
            return False
        task = self._loop.create_task(_finish(coro, yielded))
        task.add_done_callback(lambda task: self._sent_late(stream, body, task))
        return False

    def _sent_late(self, stream: _Stream, body: bytes, task: asyncio.Task[None]) -> None:
        """A send that had to wait is done: the stream goes on (or ends with its error)."""
        if stream.done.done():
            return
        if task.cancelled() or task.exception() is not None:
            stream.done.set_exception(task.exception() or asyncio.CancelledError())
            return
        try:
            if stream.on_sent is not None:
                stream.on_sent(stream.t_ms, body)
            self._advance(stream, self._loop.time())
        except Exception as exc:  # its awaiter re-raises it
            if not stream.done.done():
                stream.done.set_exception(exc)

    def _push(self, due: float, stream: _Stream) -> None:
        """Queue the stream's next body for the wake-up at ``due`` (or the grid step after)."""
        slack_s = self.slack_s
        at = math.ceil(due / slack_s) * slack_s if slack_s else due
        streams = self._due.get(at)
        if streams is not None:
            streams.append(stream)
            return
        self._due[at] = [stream]
        heapq.heappush(self._times, at)
        if at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(at, self._fire)
            self._timer_at = at

    def _fire(self) -> None:
        """Send everything that is due, across streams, in this one wake-up."""
        self._timer = None
        self._timer_at = -math.inf  # (no push arms a timer meanwhile: the end does)
        times = self._times
        # What is due now, not what falls due while sending: the loop then reads sockets
        # (new requests, disconnects) before the next batch.
        now = self._loop.time()
        while times and times[0] <= now:
            for stream in self._due.pop(heapq.heappop(times)):
                try:
                    self._advance(stream, now)
                except Exception as exc:  # a schedule or a send raised: its awaiter re-raises it
                    if not stream.done.done():
                        stream.done.set_exception(exc)
        self._timer_at = math.inf
        if times:
            self._timer_at = times[0]
            self._timer = self._loop.call_at(self._timer_at, self._fire)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _awaited(awaitable: Awaitable[None]) -> None:
    await awaitable


async def _finish(coro: Coroutine[Any, Any, None], yielded: object) -> None:
    """Run a coroutine that :class:`Pacer` started and that suspended, to its end."""
    try:
        while True:
            if isinstance(yielded, asyncio.Future):
                await asyncio.wait([yielded])  # its outcome is for the coroutine to see
            else:
                await asyncio.sleep(0)  # a bare yield
            try:
                yielded = coro.send(None)
            except StopIteration:
                return
    finally:
        coro.close()


_PACERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pacer] = weakref.WeakKeyDictionary()


def pacer() -> Pacer:
    """The running loop's :class:`Pacer` (one per loop), with the loop's ``pacing_slack_s``
    when it has one (the servers' loop: :func:`streambench._server.precise_event_loop`)."""
    loop = asyncio.get_running_loop()
    found = _PACERS.get(loop)
    if found is None:
        found = _PACERS[loop] = Pacer(loop, getattr(loop, "pacing_slack_s", 0.0))
    return found
