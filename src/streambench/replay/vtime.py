"""Virtual time: sleeps return at once while ``loop.time()`` advances exactly.

Whenever every task waits on a timer, the loop's clock jumps to the next timer instead of
sleeping. Real I/O still runs (it is polled before each jump) and executor threads get real
time to answer. Two implementations with the same clock arithmetic (integer microseconds):

- :class:`VirtualTimeLoop`, our own small loop for fresh loops (:func:`run_virtual`, every
  in-process run): its per-cycle cost does not grow with the number of tasks and it makes no
  system call on a cycle with callbacks ready and no real file descriptors or threads;
- looptime (nolar/looptime), which patches a loop someone else created (``virtual_time()``
  inside pytest-asyncio tests); it polls epoll and walks a WeakSet on every cycle.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import selectors
import threading
from asyncio.base_events import MAXIMUM_SELECT_TIMEOUT  # type: ignore[attr-defined]
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ParamSpec, TypeVar, cast, overload

P = ParamSpec("P")
R = TypeVar("R")
# Extra idle loop cycles looptime polls I/O before each clock jump. The clock only jumps when no
# callback is ready, so in-process asyncio code needs none; looptime's default (42, room for
# threads and sockets to answer) costs ~0.3 ms per jump and caps replays near 300x real time.
NOOP_CYCLES = 0
# The clock's tick, as looptime's (1 us): times are whole ticks, so float error never drifts.
TICKS_PER_S = 1_000_000
# Loop cycles a finished run may take to run the callbacks it left ready before the loop is
# judged (a chain longer than this closes the loop instead of keeping it).
SETTLE_CYCLES = 8


class _JumpingSelector(selectors.BaseSelector):
    """A real selector whose waits move the owning loop's virtual clock instead of sleeping."""

    def __init__(self, loop: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop
        self.watched = 0  # file objects registered; the loop's own wake-up pipe is the first
        self.blocking = False  # in a real wait (a thread's answer, outside I/O)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = self._real.register(fileobj, events, data)
        self.watched += 1
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = self._real.unregister(fileobj)
        self.watched -= 1
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop
        if timeout == 0:
            # callbacks are ready; with only the loop's own wake-up pipe registered (whose
            # callbacks are queued already) and no threads, there is no I/O worth a system call
            external = loop.threads or self.watched > 1
            return self._real.select(0) if external else []
        if loop.threads:
            # a thread is working: wait for it for real; its time is not virtual time
            ready = self._wait(timeout)
        else:
            ready = self._real.select(0)
            if not ready and timeout is None:
                ready = self._wait(None)  # nothing will ever fire but outside I/O
        if not ready and timeout is not None:
            loop.advance(timeout)
        return ready

    def _wait(self, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        self.blocking = True
        try:
            return self._real.select(timeout)
        finally:
            self.blocking = False


def _ticks_of(timeout: float) -> int:
    """The clock's step for a wait of ``timeout`` s (a sub-tick wait still moves it, or the
    loop would spin)."""
    step = round(timeout * TICKS_PER_S)
    return step + 1 if 0 < timeout < 1 / TICKS_PER_S else step


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time starting at 0, with looptime's clock arithmetic (so
    runs on either give the same times to the microsecond)."""

    def __init__(self) -> None:
        self._ticks = 0
        self.threads: set[asyncio.Future[Any]] = set()  # executor calls not finished yet
        self._jumping = _JumpingSelector(self)
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._ticks / TICKS_PER_S

    def advance(self, timeout: float) -> None:
        """Jump the clock by ``timeout`` seconds (the wait asyncio asked the selector for)."""
        self._ticks += _ticks_of(timeout)

    def jump_if_idle(self, delay_s: float) -> bool:
        """Move the clock ``delay_s`` ahead now, as a sleep would, when nothing could run
        meanwhile: no callback ready, no timer due by then, no thread, no outside I/O. Returns
        False (the caller sleeps) otherwise. The arithmetic is the sleep's, cycle for cycle."""
        if self._ready or self.threads or self._jumping.watched > 1:  # type: ignore[attr-defined]
            return False
        ticks = self._ticks
        when = ticks / TICKS_PER_S + delay_s
        scheduled = self._scheduled  # type: ignore[attr-defined]
        if scheduled and scheduled[0]._when <= when:
            return False
        resolution = self._clock_resolution  # type: ignore[attr-defined]
        while True:  # one pass per loop cycle the sleep would take: select, then due timers
            timeout = when - ticks / TICKS_PER_S
            if timeout > 0:  # _ticks_of(min(timeout, MAXIMUM_SELECT_TIMEOUT)), inline
                if timeout > MAXIMUM_SELECT_TIMEOUT:
                    timeout = MAXIMUM_SELECT_TIMEOUT
                ticks += round(timeout * TICKS_PER_S) + (timeout < 1 / TICKS_PER_S)
            if when < ticks / TICKS_PER_S + resolution:
                self._ticks = ticks
                return True

    def clean(self) -> bool:
        """Whether nothing of the last run is left: no live timer, ready callback, thread,
        file object but the wake-up pipe, or signal handler."""
        live = any(not handle.cancelled() for handle in self._scheduled)  # type: ignore[attr-defined]
        return not (
            live
            or self._ready  # type: ignore[attr-defined]
            or self.threads
            or self._jumping.watched > 1
            or self._signal_handlers  # type: ignore[attr-defined]
            or self.is_running()
        )

    def restart(self) -> None:
        """Back to virtual time 0 for a new run (only when :meth:`clean`)."""
        self._scheduled.clear()  # type: ignore[attr-defined]
        self._timer_cancelled_count = 0
        self._asyncgens_shutdown_called = False
        self._ticks = 0

    def _write_to_self(self) -> None:
        """Wake the loop from another thread, or from a signal handler during a real wait; on
        the loop's own thread otherwise (the finalizer of every async generator left
        unfinished calls ``call_soon_threadsafe``) the loop is awake already: no system call."""
        if self._jumping.blocking or threading.get_ident() != self._thread_id:  # type: ignore[attr-defined]
            super()._write_to_self()  # type: ignore[misc]

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        future = super().run_in_executor(executor, func, *args)
        self.threads.add(future)
        future.add_done_callback(self.threads.discard)
        return future


def new_virtual_loop() -> asyncio.AbstractEventLoop:
    """A fresh event loop on virtual time, starting at 0."""
    return VirtualTimeLoop()


# The loop each thread's last run left clean, handed to its next run: creating and closing a
# loop (selector, wake-up socket pair, executor shutdown) cost ~0.4 ms per in-process run.
_idle = threading.local()


def _take_loop() -> VirtualTimeLoop:
    loop: VirtualTimeLoop | None = getattr(_idle, "loop", None)
    _idle.loop = None
    return loop if loop is not None and not loop.is_closed() else VirtualTimeLoop()


def _settle(loop: VirtualTimeLoop) -> None:
    """After a run: cancel what is left, finish async generators, then keep the loop for the
    next run if nothing of this one can reach it (no timer, callback, thread, file object or
    signal handler), on a clock back at 0; close it otherwise."""
    try:
        asyncio.runners._cancel_all_tasks(loop)  # type: ignore[attr-defined]
        loop.run_until_complete(loop.shutdown_asyncgens())
        for _ in range(SETTLE_CYCLES):
            if not loop._ready:  # type: ignore[attr-defined]
                break
            loop.run_until_complete(asyncio.sleep(0))
        if loop.clean():
            loop.restart()
            _idle.loop = loop
            return
        for handle in loop._scheduled:  # type: ignore[attr-defined]
            handle.cancel()  # waiting for the executor below must not jump the clock to them
        loop.run_until_complete(loop.shutdown_default_executor())
    except BaseException:
        loop.close()
        raise
    loop.close()


def run_virtual(main: Coroutine[Any, Any, R] | Callable[[], Awaitable[R]]) -> R:
    """Run a coroutine (or an async function without arguments) on a virtual-time loop
    starting at 0, as ``asyncio.run`` would (each run in a fresh copy of the context)."""
    loop = _take_loop()
    try:
        coro = main if inspect.iscoroutine(main) else cast(Callable[[], Any], main)()
        return loop.run_until_complete(loop.create_task(coro, context=contextvars.copy_context()))
    finally:
        _settle(loop)


@contextmanager
def _enabled_on_running_loop() -> Iterator[None]:
    loop = asyncio.get_running_loop()
    if isinstance(loop, VirtualTimeLoop):
        yield
        return
    import looptime  # only for loops created elsewhere (pulls in pytest: ~60 ms of imports)

    if not isinstance(loop, looptime.LoopTimeEventLoop):
        # keep the clock continuous: virtual time starts where real time is now
        looptime.patch_event_loop(
            cast(asyncio.BaseEventLoop, loop),
            start=loop.time(),
            noop_cycles=NOOP_CYCLES,
            _enabled=False,
        )
    patched = cast(looptime.LoopTimeEventLoop, loop)
    if patched.looptime_on:
        yield
        return
    with patched.looptime_enabled():
        yield


@overload
def virtual_time() -> AbstractContextManager[None]: ...
@overload
def virtual_time(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...
def virtual_time(
    fn: Callable[P, Awaitable[R]] | None = None,
) -> AbstractContextManager[None] | Callable[P, Coroutine[Any, Any, R]]:
    """Run a block or an async function on virtual time, on the running event loop.

    ``with virtual_time(): await client.post(...)`` inside async code, or
    ``@virtual_time`` on an ``async def``. Outside a running loop use :func:`run_virtual`.
    """
    if fn is None:
        return _enabled_on_running_loop()

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _enabled_on_running_loop():
            return await fn(*args, **kwargs)

    return wrapper
