"""SUTs served over HTTP (``http://host:port[/path]``), in real time, their provider base URLs
pointing at a loopback :class:`ReplayHost`; ``--sut-cmd`` starts one (:func:`sut_process`).

The exchange is bounded (connect, read and total timeouts, a body size cap) and a broken one
(closed mid-event, before headers, a bad status line, an oversized header) is a row with
``sut_error``, never an aborted matrix.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from streambench._server import running_server, stop_process
from streambench.errors import ConfigError, SutError
from streambench.replay.plan import ReplayPlan
from streambench.replay.transports import RequestRecord
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

# Most a SUT's response body may hold before the run stops (a runaway stream).
MAX_BODY_BYTES = 64 * 1024 * 1024
STDERR_FD = 2  # the SUT process prints to our stderr: stdout may carry --format json
# What --sut-cmd's process finds in its environment, relative to the replay host's URL.
BASE_URL_VARIABLES = {
    "ANTHROPIC_BASE_URL": "",
    "OPENAI_BASE_URL": "/v1",
    "GOOGLE_GEMINI_BASE_URL": "",
}


class _SwitchableReplay:
    """An ASGI app answering upstream calls with the current run's replay (set per run)."""

    def __init__(self) -> None:
        self.current: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.current is None:
            return
        await self.current(scope, receive, send)


class ReplayHost:
    """The loopback replay server an HTTP SUT's provider base URLs point at."""

    def __init__(self, url: str, app: _SwitchableReplay) -> None:
        self.url = url
        self._app = app

    @contextmanager
    def serving(self, plans: Sequence[ReplayPlan]) -> Iterator[list[RequestRecord]]:
        """Answer with ``plans`` while the block runs; yields the requests the replay saw."""
        from streambench.replay import replay_app

        app = replay_app(list(plans))
        self._app.current = app
        try:
            yield app.log.requests
        finally:
            self._app.current = None


@contextmanager
def replay_host(port: int = 0) -> Iterator[ReplayHost]:
    """A :class:`ReplayHost` on loopback (``port`` 0: any free port)."""
    app = _SwitchableReplay()
    with running_server(app, port=port, param="replay_port") as url:
        yield ReplayHost(url, app)


@dataclass(frozen=True)
class HttpSut:
    """``http://host:port[/path][,k=v...]``: a running server; ``path=`` overrides the URL's."""

    spec: str
    url: str
    contract: Contract = field(default_factory=Contract)
    over_http = True

    def request_json(self, body: dict[str, Any]) -> Any:
        return self.contract.render(body)

    @property
    def address(self) -> str | None:
        return self.url

    @property
    def endpoint(self) -> str:
        """The URL the request goes to: the server of ``url`` and the contract's path."""
        parts = urlsplit(self.url)
        path, _, query = self.contract.path.partition("?")
        return urlunsplit((parts.scheme, parts.netloc, path, query, ""))

    def call(
        self,
        body: dict[str, Any],
        plans: Sequence[ReplayPlan],
        timeouts: SutTimeouts,
        host: ReplayHost | None = None,
        earlier: Sequence[Turn] = (),
    ) -> SutResponse:
        """POST in real time while ``host`` answers the SUT's upstream calls; ``earlier`` turns
        first, the judged request on the thread the first one opened."""
        if host is None:
            raise ConfigError(f"sut {self.spec!r}: an HTTP SUT needs a replay host")
        timeout = httpx.Timeout(
            timeouts.read_s, connect=timeouts.connect_s, pool=timeouts.connect_s
        )
        every_plan = all_plans(earlier, plans)
        with host.serving(every_plan) as requests, httpx.Client(timeout=timeout) as client:
            thread = None
            for number, (turn, _) in enumerate(earlier):
                _, answer, _, _ = self._exchange(client, with_thread(turn, thread), timeouts)
                thread = thread if number else thread_of(answer)
            before = len(requests)
            status, chunks, error, start = self._exchange(
                client, with_thread(body, thread), timeouts
            )
            records = judged_records(requests, before, start, len(every_plan) - len(plans))
        if error is None:
            error = explain_status(status, self.contract, f"sut {self.endpoint}")
        return SutResponse(status, chunks, records, error)

    def _exchange(
        self, client: httpx.Client, body: dict[str, Any], timeouts: SutTimeouts
    ) -> tuple[int, list[tuple[float, bytes]], str | None, float]:
        """One bounded request: (status, body chunks, what broke, when it was sent)."""
        payload = self.contract.payload(self.request_json(body))
        headers = [h for h in self.contract.header_list(len(payload)) if h[0] != "content-length"]
        chunks: list[tuple[float, bytes]] = []
        status, error = 0, None
        start = time.perf_counter()
        elapsed_s = lambda: time.perf_counter() - start  # noqa: E731
        try:
            with client.stream(
                self.contract.method, self.endpoint, content=payload, headers=headers
            ) as response:
                status = response.status_code
                size = 0
                for data in response.iter_raw():
                    chunks.append((elapsed_s() * 1000.0, data))
                    size += len(data)
                    if elapsed_s() > timeouts.total_s:
                        error = f"no end of response after {timeouts.total_s:g} s"
                        break
                    if size > MAX_BODY_BYTES:
                        error = f"response body over {MAX_BODY_BYTES} bytes"
                        break
        except httpx.TimeoutException as exc:
            error = f"{type(exc).__name__}: no answer within the timeout ({exc})"
        except httpx.HTTPError as exc:  # closed early, bad status line, huge header, ...
            error = f"{type(exc).__name__}: {exc}"
        chunks.append((elapsed_s() * 1000.0, b""))
        return status, chunks, error, start


def _wait_for_port(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(
                f"exited with code {process.returncode} before {url} answered", param="sut_cmd"
            )
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SutError(f"nothing listens on {host}:{port} after {timeout_s:g} s", param="sut_cmd")


@contextmanager
def sut_process(cmd: str, sut_url: str, replay_url: str) -> Iterator[None]:
    """Start ``cmd`` with its provider base URLs on the replay host (its stdout goes to
    stderr); stop it afterwards."""
    with tempfile.TemporaryDirectory(prefix="streambench-sut-") as tmp:
        env = {
            **os.environ,
            **{name: replay_url + suffix for name, suffix in BASE_URL_VARIABLES.items()},
            **api_key_env(),
            "STREAMBENCH_DB": str(Path(tmp) / "sut.sqlite3"),
        }
        try:
            process = subprocess.Popen(shlex.split(cmd), env=env, stdout=STDERR_FD)
        except OSError as exc:
            raise SutError(f"{cmd!r}: cannot start: {exc.strerror}", param="sut_cmd") from None
        try:
            _wait_for_port(sut_url, process)
            yield
        finally:
            stop_process(process)
