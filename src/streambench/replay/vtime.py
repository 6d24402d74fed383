"""Virtual time via looptime: sleeps return at once while ``loop.time()`` advances exactly.

looptime (nolar/looptime) patches an asyncio event loop so that, whenever every task waits
on a timer, the loop's clock jumps to the next timer instead of sleeping. Real I/O still
runs (it polls before jumping). It is maintained, small, and works with any asyncio code,
including httpx, the anthropic/openai SDKs and ASGI apps called in-process.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ParamSpec, TypeVar, cast, overload

import looptime

P = ParamSpec("P")
R = TypeVar("R")
# Extra idle loop cycles looptime polls I/O before each clock jump. The clock only jumps when no
# callback is ready, so in-process asyncio code needs none; looptime's default (42, room for
# threads and sockets to answer) costs ~0.3 ms per jump and caps replays near 300x real time.
NOOP_CYCLES = 0


def new_virtual_loop() -> asyncio.AbstractEventLoop:
    """A fresh event loop on virtual time, starting at 0."""
    return looptime.new_event_loop(start=0.0, noop_cycles=NOOP_CYCLES)


def run_virtual(main: Coroutine[Any, Any, R] | Callable[[], Awaitable[R]]) -> R:
    """Run a coroutine (or an async function without arguments) on a new virtual-time loop."""
    with asyncio.Runner(loop_factory=new_virtual_loop) as runner:
        coro = main if inspect.iscoroutine(main) else cast(Callable[[], Any], main)()
        return runner.run(coro)


@contextmanager
def _enabled_on_running_loop() -> Iterator[None]:
    loop = asyncio.get_running_loop()
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
