"""Systems under test: POST a case's request, get the SSE response body as (t_ms, bytes).

Spec strings: ``reference`` / ``reference:order=text_first,seed=3`` (the bundled reference
app in process), ``module:attr`` (an ASGI app or a zero-argument factory, in process),
``http://host:port/path`` (a running server whose provider base URL points at the replay
host, see :class:`ReplayHost`). In-process SUTs run on virtual time and every httpx request
they make is answered by the replay via respx; HTTP SUTs run in real time.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any

import httpx
import respx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streambench._server import running_server
from streambench.errors import SpecError
from streambench.replay.plan import ReplayPlan
from streambench.replay.transports import ReplayTransport
from streambench.replay.vtime import run_virtual

# Longest a run may take on its own clock: a SUT that never ends is cut off here.
RUN_TIMEOUT_S = 600.0
REQUEST_OPTIONS = frozenset({"order", "seed"})  # reference options that are request fields


@dataclass(frozen=True)
class SutSpec:
    kind: str  # reference | asgi | http
    target: str  # module:attr or URL ("" for the reference)
    options: dict[str, str] = field(default_factory=dict)
    spec: str = ""


@dataclass
class SutResponse:
    """``chunks``: the response body as it arrived; ``upstream_starts_ms``: when each upstream
    call began, on the same clock (0 = the request was sent)."""

    status: int
    chunks: list[tuple[float, bytes]]
    upstream_starts_ms: list[float]
    sut_error: str | None = None  # the in-process app raised (its stream ends there)


def parse_sut(spec: str) -> SutSpec:
    if spec.startswith(("http://", "https://")):
        return SutSpec("http", spec, spec=spec)
    if spec == "reference" or spec.startswith("reference:"):
        options: dict[str, str] = {}
        for item in filter(None, spec.partition(":")[2].split(",")):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise SpecError(f"sut {spec!r}: option {item!r} is not key=value")
            options[key.strip()] = value.strip()
        known = REQUEST_OPTIONS | {f.name for f in fields(_reference_config_class())}
        unknown = sorted(set(options) - known)
        if unknown:
            raise SpecError(f"sut {spec!r}: unknown reference option {unknown[0]!r}")
        return SutSpec("reference", "", options, spec)
    module, colon, attr = spec.partition(":")
    if not colon or not module or not attr:
        raise SpecError(
            f"sut {spec!r}: expected reference[:k=v,...], module:attr or http://host:port/path"
        )
    return SutSpec("asgi", spec, spec=spec)


def _reference_config_class() -> type:
    from streambench.reference.config import ReferenceConfig

    return ReferenceConfig


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(like, int | float):
        return type(like)(value)
    if isinstance(like, tuple):
        return tuple(v for v in value.split("+") if v)
    return value


def _reference_app(sut: SutSpec, plans: Sequence[ReplayPlan]) -> ASGIApp:
    from streambench.reference.app import create_app
    from streambench.reference.config import ReferenceConfig
    from streambench.reference.providers import KIND_OF_API
    from streambench.reference.store import Store

    defaults = ReferenceConfig()
    settings: dict[str, Any] = {
        "providers": tuple(KIND_OF_API.get(p.api, "anthropic") for p in plans),
        "store": Store(":memory:"),
    }
    for key, value in sut.options.items():
        if key not in REQUEST_OPTIONS:
            try:
                settings[key] = _coerce(value, getattr(defaults, key))
            except ValueError:
                raise SpecError(f"sut {sut.spec!r}: {key}={value!r} is not valid") from None
    return create_app(ReferenceConfig(**settings))


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


def request_body(sut: SutSpec, body: dict[str, Any]) -> dict[str, Any]:
    """The case's request, with the SUT's request-level options (order, seed) added."""
    extra: dict[str, Any] = {}
    for key in REQUEST_OPTIONS & set(sut.options):
        value = sut.options[key]
        extra[key] = int(value) if key == "seed" and value.lstrip("-").isdigit() else value
    return {**body, **extra}


async def _post_asgi(
    app: ASGIApp, path: str, body: bytes
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

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"sut.local"),
            (b"content-type", b"application/json"),
            (b"accept", b"text/event-stream"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("sut.local", 80),
        "state": {},
    }
    error: str | None = None
    try:
        await asyncio.wait_for(app(scope, receive, send), RUN_TIMEOUT_S)
    except TimeoutError:
        error = f"no end of response after {RUN_TIMEOUT_S:g} s"
    except Exception as exc:  # a crashing SUT is a result, not a harness failure
        error = f"{type(exc).__name__}: {exc}"
    finally:
        finished.set()
    if error is not None:
        chunks.append(((loop.time() - start) * 1000.0, b""))
    return status, chunks, error


class _TimedReplay(ReplayTransport):
    """The replay transport, noting when each upstream call began on the running clock."""

    def __init__(self, plans: Sequence[ReplayPlan], clock: Callable[[], float]) -> None:
        super().__init__(list(plans), cycle=True)
        self.clock = clock
        self.starts_ms: list[float] = []

    def respond(self, request: httpx.Request) -> httpx.Response:
        self.starts_ms.append(self.clock())
        return super().respond(request)


def call_in_process(sut: SutSpec, body: dict[str, Any], plans: Sequence[ReplayPlan]) -> SutResponse:
    """Run the SUT on a fresh virtual-time loop with every httpx call answered by the replay."""

    async def main() -> SutResponse:
        loop = asyncio.get_running_loop()
        start = loop.time()
        replay = _TimedReplay(plans, lambda: (loop.time() - start) * 1000.0)
        app = _reference_app(sut, plans) if sut.kind == "reference" else load_asgi(sut.target)
        with respx.mock(assert_all_called=False, using="httpx") as router:
            router.route().mock(side_effect=replay.respond)
            payload = json.dumps(request_body(sut, body)).encode()
            status, chunks, error = await _post_asgi(app, "/messages", payload)
        return SutResponse(status, chunks, replay.starts_ms, error)

    return run_virtual(main)


class _SwitchableReplay:
    """An ASGI app answering upstream calls with the current run's replay (set per run)."""

    def __init__(self) -> None:
        self.current: ASGIApp | None = None
        self.starts: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.current is None:
            return
        self.starts.append(time.perf_counter())
        await self.current(scope, receive, send)


class ReplayHost:
    """The loopback replay server an HTTP SUT's provider base URLs point at."""

    def __init__(self, url: str, app: _SwitchableReplay) -> None:
        self.url = url
        self._app = app

    @contextmanager
    def serving(self, plans: Sequence[ReplayPlan]) -> Iterator[list[float]]:
        from streambench.replay import replay_app

        self._app.current = replay_app(list(plans))
        self._app.starts = []
        try:
            yield self._app.starts
        finally:
            self._app.current = None


@contextmanager
def replay_host(port: int = 0) -> Iterator[ReplayHost]:
    app = _SwitchableReplay()
    with running_server(app, port=port, option="--replay-port") as url:
        yield ReplayHost(url, app)


def call_http(
    url: str, body: dict[str, Any], plans: Sequence[ReplayPlan], host: ReplayHost
) -> SutResponse:
    """POST to a running SUT in real time while ``host`` answers its upstream calls."""
    chunks: list[tuple[float, bytes]] = []
    with host.serving(plans) as starts, httpx.Client(timeout=RUN_TIMEOUT_S) as client:
        start = time.perf_counter()
        headers = {"accept": "text/event-stream"}
        try:
            with client.stream("POST", url, json=body, headers=headers) as response:
                status = response.status_code
                for data in response.iter_raw():
                    chunks.append(((time.perf_counter() - start) * 1000.0, data))
        except httpx.HTTPError as exc:
            raise SpecError(f"sut {url!r}: {exc}") from None
        chunks.append(((time.perf_counter() - start) * 1000.0, b""))
        return SutResponse(status, chunks, [(t - start) * 1000.0 for t in starts])
