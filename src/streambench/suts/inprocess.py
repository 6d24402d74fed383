"""SUTs called in this process over ASGI: the bundled reference and any ``module:attr`` app.

Every upstream call they make goes through :func:`streambench.replay.mock_upstream`, the same
interception the pytest plugin uses (httpx, the SDKs' httpx2, google-genai). They run on
virtual time by default (``clock=real`` runs them in real time, for apps that wait on
worker threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from types import FrameType
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Scope

from streambench.errors import SpecError
from streambench.replay.plan import ReplayPlan
from streambench.replay.transports import mock_upstream
from streambench.replay.vtime import run_virtual
from streambench.suts.base import (
    SutResponse,
    SutTimeouts,
    Turn,
    all_plans,
    api_key_env,
    judged_records,
    with_thread,
)
from streambench.suts.contract import Contract, explain_status, thread_of

if TYPE_CHECKING:
    from streambench.suts.http import ReplayHost

CLOCKS = ("virtual", "real")
# Longest (real seconds) a timed-out run waits for its worker threads while still intercepting.
DRAIN_S = 30.0
REQUEST_OPTIONS = frozenset({"order", "seed"})  # reference options that are request fields


def load_asgi(target: str) -> ASGIApp:
    """``module:attr``: an ASGI app, or a zero-argument factory returning one.

    Modules are looked up from the current folder too, as ``uvicorn module:attr`` does.
    """
    module_name, _, attr = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"sut {target!r}: cannot load: {exc}") from None
    if isinstance(obj, type) or not callable(obj):
        raise SpecError(f"sut {target!r}: not an ASGI app or factory")
    params = getattr(obj, "__code__", None)
    is_factory = params is not None and params.co_argcount == 0
    return obj() if is_factory else obj


def _scope(contract: Contract, content_length: int) -> Scope:
    headers = [(b"host", b"sut.local")] + [
        (k.encode("latin-1"), v.encode("latin-1")) for k, v in contract.header_list(content_length)
    ]
    path, _, query = contract.path.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": contract.method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("sut.local", 80),
        "state": {},
    }


async def _post_asgi(
    app: ASGIApp, contract: Contract, body: bytes, total_s: float
) -> tuple[int, list[tuple[float, bytes]], str | None]:
    """Call ``app`` directly (httpx's ASGITransport buffers the body, losing the timing)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    chunks: list[tuple[float, bytes]] = []
    status = 0
    finished = asyncio.Event()
    sent_request = False

    async def receive() -> Message:
        nonlocal sent_request
        if not sent_request:
            sent_request = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(((loop.time() - start) * 1000.0, bytes(message.get("body", b""))))
            if not message.get("more_body", False):
                finished.set()

    async def guarded() -> str | None:
        # SystemExit / KeyboardInterrupt from a task would stop the loop and streambench with it
        try:
            await app(_scope(contract, len(body)), receive, send)
        except (SystemExit, KeyboardInterrupt, Exception) as exc:
            return f"{type(exc).__name__}: {exc}"
        except BaseExceptionGroup as group:  # an anyio task group holding SystemExit
            return f"{type(group).__name__}: {group}"
        return None

    error: str | None
    try:
        error = await asyncio.wait_for(guarded(), total_s)
    except TimeoutError:
        error = f"no end of response after {total_s:g} s"
    finally:
        finished.set()
    if error is not None:
        chunks.append(((loop.time() - start) * 1000.0, b""))
    return status, chunks, error


class _ThreadWatch:
    """Watches the SUT's jobs in worker threads (anyio's ``to_thread``, which starlette's
    ``run_in_threadpool`` uses, and ``loop.run_in_executor``, which ``asyncio.to_thread`` uses):
    ``running`` counts jobs under way; ``waited`` notes a wait for one that was cancelled (the
    run timed out while the app waited outside the event loop)."""

    def __init__(self) -> None:
        self.running = 0
        self.waited = False
        self._lock = threading.Lock()

    def _wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def job(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.running += 1
            try:
                return func(*args, **kwargs)
            finally:
                with self._lock:
                    self.running -= 1

        return job

    def _note_cancel(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            self.waited = True

    @contextlib.contextmanager
    def watching(self, loop: asyncio.AbstractEventLoop) -> Iterator[None]:
        import anyio.to_thread

        run_sync = anyio.to_thread.run_sync
        run_in_executor = loop.run_in_executor

        async def counted_run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            try:
                return await run_sync(self._wrap(func), *args, **kwargs)
            except asyncio.CancelledError:
                self.waited = True
                raise

        def counted_executor(executor: Any, func: Callable[..., Any], *args: Any) -> Any:
            future = run_in_executor(executor, self._wrap(func), *args)
            future.add_done_callback(self._note_cancel)
            return future

        # plain attribute swaps, restored on exit (mock.patch.object cost ~0.1 ms per run)
        own = vars(loop).get("run_in_executor")  # an instance attribute set before, if any
        anyio.to_thread.run_sync = counted_run_sync  # type: ignore[assignment]
        loop.run_in_executor = counted_executor  # type: ignore[method-assign]
        try:
            yield
        finally:
            anyio.to_thread.run_sync = run_sync
            if own is None:
                del loop.run_in_executor  # the class's method again
            else:
                loop.run_in_executor = own  # type: ignore[method-assign]

    def drain(self, timeout_s: float) -> None:
        """Wait (real time) for jobs still running, so none reaches the network unanswered."""
        deadline = time.monotonic() + timeout_s
        while self.running and time.monotonic() < deadline:
            time.sleep(0.01)


@contextlib.contextmanager
def _watch_sigint() -> Iterator[list[int]]:
    """Notes a real SIGINT (yielded list non-empty) so a KeyboardInterrupt the SUT raised
    itself can be told from the user's Ctrl-C; the previous handler still runs."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        handler = previous if callable(previous) else signal.default_int_handler
        handler(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, then as it was before (whatever the SUT changed).
    Compares the raw mapping behind it: ``mock.patch.dict`` decodes, clears and re-sets every
    variable, ~0.3 ms per run."""
    raw: dict[Any, Any] = os.environ._data  # type: ignore[attr-defined]
    before = dict(raw)
    os.environ.update(values)
    try:
        yield
    finally:
        if raw != before:
            for key in raw.keys() - before.keys():
                os.unsetenv(key)
                del raw[key]
            for key, value in before.items():
                if raw.get(key) != value:
                    os.putenv(key, value)
                    raw[key] = value


def _blocked_message(total_s: float, spec: str) -> str:
    return (
        f"no end of response after {total_s:g} virtual s: the SUT blocked outside the event loop"
        " (a worker thread, e.g. a sync SDK client via run_in_threadpool), which virtual time"
        f" cannot follow; run it in real time (SUT '{spec},clock=real') or over HTTP"
        " (an http://... SUT, started by sut_cmd)"
    )


@dataclass(frozen=True)
class InProcessSut:
    """An ASGI app called in this process; subclasses say how the app is made."""

    spec: str
    contract: Contract = field(default_factory=Contract)
    clock: str = "virtual"
    over_http = False

    @property
    def address(self) -> str | None:
        return None

    def make_app(self, plans: Sequence[ReplayPlan]) -> ASGIApp:
        raise NotImplementedError

    def request_json(self, body: dict[str, Any]) -> Any:
        return self.contract.render(body)

    def call(
        self,
        body: dict[str, Any],
        plans: Sequence[ReplayPlan],
        timeouts: SutTimeouts,
        host: ReplayHost | None = None,
        earlier: Sequence[Turn] = (),
    ) -> SutResponse:
        """Run the app on a fresh loop (virtual or real time) with every upstream call
        answered by the replay; its stdout goes to stderr. ``earlier`` turns (a body and its
        plans each) are sent first on the same app; the judged request continues the thread
        the first one opened (:func:`~streambench.suts.contract.thread_of`)."""
        virtual = self.clock == "virtual"

        async def main() -> SutResponse:
            loop = asyncio.get_running_loop()
            start = loop.time()
            clock: Callable[[], float] = lambda: loop.time() - start  # noqa: E731
            app = self.make_app(plans)
            threads = _ThreadWatch()
            every_plan = all_plans(earlier, plans)
            with mock_upstream(every_plan, clock=clock) as replay, threads.watching(loop):
                thread = None
                for number, (turn, _) in enumerate(earlier):
                    payload = self.contract.payload(self.request_json(with_thread(turn, thread)))
                    _, answer, _ = await _post_asgi(app, self.contract, payload, timeouts.total_s)
                    thread = thread if number else thread_of(answer)
                # the judged turn's clock: the request's (as without earlier turns)
                before, begun = len(replay.requests), clock() if earlier else 0.0
                payload = self.contract.payload(self.request_json(with_thread(body, thread)))
                status, chunks, error = await _post_asgi(
                    app, self.contract, payload, timeouts.total_s
                )
                threads.drain(DRAIN_S)
            records = judged_records(replay.requests, before, begun, len(every_plan) - len(plans))
            if error and error.startswith("no end of response") and threads.waited and virtual:
                error = _blocked_message(timeouts.total_s, self.spec)
            if error is None:
                error = explain_status(status, self.contract, f"sut {self.spec!r}")
            return SutResponse(status, chunks, records, error)

        # print() in the SUT must not reach stdout (--format json); SDK clients need some key
        with (
            contextlib.redirect_stdout(sys.stderr),
            _environ(api_key_env()),
            _watch_sigint() as interrupted,
        ):
            try:
                return run_virtual(main) if virtual else asyncio.run(main())
            except (SystemExit, KeyboardInterrupt) as exc:  # from an app's task: stops the loop
                if interrupted:
                    raise  # the user's Ctrl-C, not the SUT's
                return SutResponse(0, [(0.0, b"")], [], f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class AsgiSut(InProcessSut):
    """``module:attr[,path=...,body=...]``: an ASGI app or factory, loaded per run."""

    target: str = ""

    def make_app(self, plans: Sequence[ReplayPlan]) -> ASGIApp:
        return load_asgi(self.target)


def _reference_config_class() -> type:
    from streambench.reference.config import ReferenceConfig

    return ReferenceConfig


@functools.cache
def reference_options() -> frozenset[str]:
    """The options ``reference:k=v,...`` takes: request fields and ReferenceConfig fields."""
    return REQUEST_OPTIONS | {f.name for f in fields(_reference_config_class())} | {"clock"}


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(like, int | float):
        return type(like)(value)
    if isinstance(like, tuple):
        return tuple(v for v in value.split("+") if v)
    return value


@dataclass(frozen=True)
class ReferenceSut(InProcessSut):
    """``reference[:k=v,...]``: the bundled reference app, its chain built from the plans' APIs;
    its store is a fresh in-memory database per run unless ``db_path=`` names one."""

    options: dict[str, str] = field(default_factory=dict)

    def request_json(self, body: dict[str, Any]) -> Any:
        """The case's request, with the SUT's request-level options (order, seed) added."""
        extra: dict[str, Any] = {}
        for key in REQUEST_OPTIONS & set(self.options):
            value = self.options[key]
            extra[key] = int(value) if key == "seed" and value.lstrip("-").isdigit() else value
        return {**body, **extra}

    def make_app(self, plans: Sequence[ReplayPlan]) -> ASGIApp:
        from streambench.reference.app import create_app
        from streambench.reference.config import ReferenceConfig
        from streambench.reference.providers import KIND_OF_API
        from streambench.reference.store import Store

        defaults = ReferenceConfig()
        settings: dict[str, Any] = {
            "providers": tuple(KIND_OF_API.get(p.api, "anthropic") for p in plans),
        }
        if "db_path" not in self.options:  # a database of the user's: opened per run
            settings["store"] = Store(":memory:")
        for key, value in self.options.items():
            if key not in REQUEST_OPTIONS | {"clock"}:
                try:
                    settings[key] = _coerce(value, getattr(defaults, key))
                except ValueError:
                    raise SpecError(f"sut {self.spec!r}: {key}={value!r} is not valid") from None
        return create_app(ReferenceConfig(**settings))
