"""Deliver replay plans to httpx clients: a transport (sync and async) and an interceptor.

Like httpx's own transports, these only decide where bytes come from: any httpx-based
client (the anthropic and openai SDKs included) receives the planned status, headers and
chunks at the planned times, and sees a dropped connection as httpx's RemoteProtocolError.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from unittest import mock

import httpx

from streambench._pacing import paced, paced_sync
from streambench.replay.plan import ReplayPlan, build_plan
from streambench.transcript import Transcript

# What httpx (h11) raises when a server closes the connection inside a chunked body.
DROPPED_MESSAGE = (
    "peer closed connection without sending complete message body (incomplete chunked read)"
)


@dataclass
class RequestRecord:
    """One request the replay answered, and what happened to its response."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    plan_index: int
    started: float = 0.0  # the log's clock when the request arrived
    thread_id: int = 0  # the thread that sent it (a sync client in a worker thread differs)
    delivered_bytes: int = 0
    completed: bool = False  # every planned byte was delivered and the stream ended as planned
    client_closed: bool = False  # the client closed the response before its end
    disconnected: bool = False  # the replay dropped the connection (a disconnect fault)
    t_ms: list[float] = field(default_factory=list)  # delivery time of each chunk

    @property
    def json(self) -> Any:
        """The request body parsed as JSON (None when it is not JSON)."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class ReplayLog:
    """Hands out plans in order (cycling) and records every request; thread-safe. ``clock``
    stamps each request's arrival (``RequestRecord.started``)."""

    def __init__(
        self,
        plans: Sequence[ReplayPlan | Transcript] | ReplayPlan | Transcript,
        cycle: bool,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        items = [plans] if isinstance(plans, ReplayPlan | Transcript) else list(plans)
        if not items:
            raise ValueError("a replay needs at least one plan or transcript")
        self.plans = [p if isinstance(p, ReplayPlan) else build_plan(p) for p in items]
        self.cycle = cycle
        self.clock = clock
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()

    def next(
        self, method: str, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[ReplayPlan, RequestRecord]:
        with self._lock:
            n = len(self.requests)
            if n >= len(self.plans) and not self.cycle:
                raise LookupError(
                    f"replay has {len(self.plans)} plan(s) and cycle=False:"
                    f" no answer for request {n + 1}"
                )
            index = n % len(self.plans)
            record = RequestRecord(
                method, url, headers, body, index, self.clock(), threading.get_ident()
            )
            self.requests.append(record)
        return self.plans[index], record


class _ReplayStream:
    """The response body: plays the plan's chunks on the clock of whoever iterates it."""

    error: type[Exception] = Exception  # the client library's RemoteProtocolError

    def __init__(self, plan: ReplayPlan, record: RequestRecord, speed: float) -> None:
        self._plan = plan
        self._record = record
        self._speed = speed

    def _finish(self) -> None:
        if self._plan.ending == "disconnect":
            self._record.disconnected = True
            raise self.error(DROPPED_MESSAGE)
        self._record.completed = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        record = self._record
        times = record.t_ms  # (the per-chunk path: no method call but the pacing's)
        async for t_ms, data in paced(self._plan.schedule(), self._speed):
            record.delivered_bytes += len(data)
            times.append(t_ms)
            yield data
        self._finish()

    def __iter__(self) -> Iterator[bytes]:
        record = self._record
        for t_ms, data in paced_sync(self._plan.schedule(), self._speed):
            record.delivered_bytes += len(data)
            record.t_ms.append(t_ms)
            yield data
        self._finish()

    def close(self) -> None:
        record = self._record
        if not (record.completed or record.disconnected):
            record.client_closed = True

    async def aclose(self) -> None:
        self.close()


@functools.cache
def _stream_class(http: ModuleType) -> type[_ReplayStream]:
    """The body stream for one client library: httpx, or httpx2 (what the anthropic and openai
    SDKs use since they moved to it). Both have the same interfaces in different modules."""
    bases = (_ReplayStream, http.AsyncByteStream, http.SyncByteStream)
    return type(f"ReplayStream_{http.__name__}", bases, {"error": http.RemoteProtocolError})


def _module_of(request: Any) -> ModuleType:
    return sys.modules[type(request).__module__.partition(".")[0]]


class ReplayTransport(httpx.AsyncBaseTransport, httpx.BaseTransport):
    """Answer each request with the next plan (in order, cycling): ``httpx.AsyncClient(
    transport=ReplayTransport([plan]))`` or ``anthropic.AsyncAnthropic(http_client=...)``.

    Async clients wait on the event loop's clock (virtual under ``virtual_time``); sync clients
    sleep for real. ``speed`` divides every delay (``math.inf``: no waiting at all).
    ``requests`` records every request: method, url, headers, json, delivered_bytes, completed,
    client_closed, disconnected.
    """

    def __init__(
        self,
        plans: Sequence[ReplayPlan | Transcript] | ReplayPlan | Transcript,
        cycle: bool = True,
        speed: float = 1.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be above 0")
        self.log = ReplayLog(plans, cycle, clock)
        self.speed = speed

    @property
    def requests(self) -> list[RequestRecord]:
        return self.log.requests

    @property
    def plans(self) -> list[ReplayPlan]:
        return self.log.plans

    def respond(self, request: httpx.Request) -> httpx.Response:
        """The (streaming) response to ``request``, of the request's own library (httpx or
        httpx2); its body plays when it is read."""
        http = _module_of(request)
        try:
            body = request.content
        except http.RequestNotRead:  # a streamed upload nobody has read
            body = b""
        plan, record = self.log.next(request.method, str(request.url), dict(request.headers), body)
        stream = _stream_class(http)(plan, record, self.speed)
        response: httpx.Response = http.Response(
            plan.status, headers=plan.headers, stream=stream, request=request
        )
        return response

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        return self.respond(request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return self.respond(request)


def _default_transports() -> Iterator[ModuleType]:
    """httpx, and httpx2 (the anthropic and openai SDKs' fork) when it is installed."""
    yield httpx
    try:
        import httpx2
    except ImportError:
        return
    yield httpx2


@contextmanager
def _patch_transports(transport: ReplayTransport, base_url: str | None) -> Iterator[None]:
    """Answer the requests of httpx's and httpx2's default transports (to ``base_url``, or
    all) with the replay; others go out as usual. Plain attribute swaps, restored on exit:
    respx did the same through autospec mocks and httpcore conversions at ~1 ms per run."""

    def matches(request: httpx.Request) -> bool:
        return base_url is None or str(request.url).startswith(base_url)

    saved: list[tuple[type, str, Any]] = []
    for http in _default_transports():
        sync_send = http.HTTPTransport.handle_request
        async_send = http.AsyncHTTPTransport.handle_async_request

        def handle_request(self: Any, request: Any, _send: Any = sync_send) -> Any:
            if not matches(request):
                return _send(self, request)
            request.read()
            return transport.respond(request)

        async def handle_async_request(self: Any, request: Any, _send: Any = async_send) -> Any:
            if not matches(request):
                return await _send(self, request)
            await request.aread()
            return transport.respond(request)

        saved += [
            (http.HTTPTransport, "handle_request", sync_send),
            (http.AsyncHTTPTransport, "handle_async_request", async_send),
        ]
        http.HTTPTransport.handle_request = handle_request
        http.AsyncHTTPTransport.handle_async_request = handle_async_request
    try:
        yield
    finally:
        for cls, name, original in reversed(saved):
            setattr(cls, name, original)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


@contextmanager
def _patch_aiohttp() -> Iterator[None]:
    """google-genai sends through aiohttp when it is installed, which the httpx and httpx2
    patches do not see: its clients take their httpx path instead (answered by the replay), and
    any other aiohttp request to a host off loopback is stopped with an error saying why,
    instead of leaving the machine. Only modules already imported (by the app, when it was
    loaded) are patched: importing them here would cost every run a second."""
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        yield
        return
    send = aiohttp.ClientSession._request

    async def loopback_only(self: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        build = getattr(self, "_build_url", None)  # a relative URL joins the session's base_url
        target = str(build(url) if build else url)
        if httpx.URL(target).host not in LOOPBACK_HOSTS:
            raise aiohttp.ClientConnectionError(
                f"streambench: {method} {target}: aiohttp requests are not answered by the replay"
                " in process (httpx and httpx2 are); run this app over HTTP with --sut-cmd"
            )
        return await send(self, method, url, *args, **kwargs)

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(aiohttp.ClientSession, "_request", loopback_only))
        genai_client = sys.modules.get("google.genai._api_client")
        if genai_client is not None:
            stack.enter_context(
                mock.patch.object(genai_client.BaseApiClient, "_use_aiohttp", lambda _: False)
            )
        yield


@contextmanager
def mock_upstream(
    plans: Sequence[ReplayPlan | Transcript] | ReplayPlan | Transcript,
    base_url: str | None = None,
    cycle: bool = True,
    speed: float = 1.0,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[ReplayTransport]:
    """Every httpx and httpx2 request in the process (to ``base_url``, or anywhere) gets the
    replay: requests sent through httpx's and httpx2's default transports (the anthropic,
    openai and google-genai SDKs' clients); requests to other URLs go out as usual.
    google-genai is kept off aiohttp, and other aiohttp requests off loopback fail. ``clock``
    stamps each request's arrival. Yields the :class:`ReplayTransport` (``.requests``
    records every request)."""
    transport = ReplayTransport(plans, cycle=cycle, speed=speed, clock=clock)
    with _patch_transports(transport, base_url), _patch_aiohttp():
        yield transport
