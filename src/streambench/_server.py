"""Run an ASGI app on a real loopback socket: in the foreground (CLI) or in a thread (tests)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import select
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from streambench.errors import ConfigError

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

LOOPBACK = "127.0.0.1"

# uvicorn ``loop`` option for servers that pace (serve, fake-provider): see precise_event_loop.
PRECISE_LOOP = "streambench._server:precise_event_loop"
FD_SETSIZE = 1024  # select()'s limit: only the epoll descriptor itself goes through it
FULL_COLLECTION_EVERY = 1000  # middle-generation collections per full one (default 10)
# The Pacer's grid on that loop: a body goes at most this late, and the bodies of every stream
# due within one step share a wake-up (a wake-up cost 20-100 us of CPU here, a send ~7 us).
PACING_SLACK_S = 0.0005


class PreciseEpollSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """epoll for any number of connections, with microsecond waits.

    ``epoll_wait`` rounds every timeout up to the next millisecond (late timers), and
    ``select()`` dies on descriptors above 1024. So a wait is a ``select()`` on the one epoll
    descriptor (readable when any registered one is ready; microsecond timeout), then an
    ``epoll_wait(0)`` collects the events.
    """

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        epoll_fd = self.fileno()
        if timeout is not None and timeout > 0 and epoll_fd < FD_SETSIZE:
            if not select.select([epoll_fd], [], [], timeout)[0]:
                return []  # a timer's wake-up with nothing to read: no epoll_wait to make
            timeout = 0
        return super().select(timeout)


class PreciseEventLoop(asyncio.SelectorEventLoop):
    """The servers' loop (see :func:`precise_event_loop`): :class:`PreciseEpollSelector`
    timers, and the slack its :class:`~streambench._pacing.Pacer` paces with."""

    pacing_slack_s = PACING_SLACK_S


def _raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one (often 1024 -> far more): a server
    with a descriptor per connection must not refuse the 1021st client."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 1 << 16 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Terminate a server process, and kill it if it has not exited within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def precise_event_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers wake within ~0.1 ms and that holds thousands of connections
    (see :class:`PreciseEpollSelector`); lifts the open-file limit for them."""
    _raise_open_file_limit()
    # Objects from start-up (imports) are never scanned again: a full collection over them
    # stalled every stream of fake-provider for 120-180 ms.
    gc.freeze()
    # A full collection walks every connection's objects (70-160 ms at 1000 streams) and
    # finds next to nothing: run it a hundred times less often than by default.
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
    return PreciseEventLoop(PreciseEpollSelector())


def body_writer(send: Callable[..., object]) -> Callable[[bytes], bool] | None:
    """For :meth:`~streambench._pacing.Pacer.send_bodies`: a writer of response bodies
    straight to the connection of uvicorn's httptools protocol when ``send`` is that
    protocol's own (None otherwise: h11, a middleware's wrapper, a test's double). It writes
    the bytes uvicorn's ``send`` writes for a chunked body (``%x CRLF body CRLF``), without an
    ASGI message, a coroutine and uvicorn's checks per body (at thousands of streams they
    cost as much as the write); it returns False, writing nothing, when the response is not
    chunked, the client is gone or the write buffer is full: ``send`` then decides (waits)."""
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    cycle = getattr(send, "__self__", None)
    if not isinstance(cycle, RequestResponseCycle):
        return None
    transport, flow = cycle.transport, cycle.flow

    def write(body: bytes) -> bool:
        if (
            cycle.chunked_encoding is not True
            or cycle.response_complete
            or cycle.disconnected
            or flow.write_paused
        ):
            return False
        if body:  # (an empty body writes nothing: the terminator is ``more_body=False``'s)
            transport.write(b"%x\r\n%b\r\n" % (len(body), body))
        return True

    return write


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` reaches this machine only ('' and 0.0.0.0 are every interface)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_exposed(host: str, exposes: str) -> None:
    """One warning line on stderr when ``host`` is reachable from other machines."""
    if not is_loopback(host):
        where = "every interface" if host in ("", "0.0.0.0", "::") else host
        print(
            f"streambench: warning: listening on {where}, not loopback: anyone who can reach "
            f"this machine {exposes}",
            file=sys.stderr,
            flush=True,
        )


def bind_socket(
    host: str = LOOPBACK, port: int = 0, param: str = "port", exposes: str | None = None
) -> socket.socket:
    """Bind before starting the server so the real port is known (``port=0`` picks a free one).
    ``param`` names the port's parameter in errors; ``exposes`` (what a non-loopback bind lets
    anyone do) turns on :func:`warn_if_exposed`."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"{port}: must be 0 (any free port) to 65535", param=param)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    sock.listen(2048)  # accept (queue) connections as soon as the URL is printed
    if exposes is not None:
        warn_if_exposed(host, exposes)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


SHUTDOWN_GRACE_S = 2.0  # SIGTERM: open streams get this long, then they are cancelled


def _server(app: ASGIApp, loop: str = "auto") -> uvicorn.Server:
    import uvicorn  # here: CLI modules read LOOPBACK without loading the server stack

    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        loop=loop,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    return uvicorn.Server(config)


def serve_forever(
    app: ASGIApp,
    host: str = LOOPBACK,
    port: int = 0,
    on_ready: Callable[[str], None] | None = None,
    loop: str = "auto",
    sock: socket.socket | None = None,
    exposes: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (open streams get :data:`SHUTDOWN_GRACE_S`, then end).
    ``loop`` is uvicorn's loop option ("auto", or "module:factory" of a custom event loop).
    ``sock``: a socket from :func:`bind_socket` (bound before the app was built), else host and
    port. ``exposes``: what a non-loopback bind lets anyone do (a warning line says it)."""
    sock = sock or bind_socket(host, port, exposes=exposes)
    if on_ready is not None:
        on_ready(url_of(sock))
    _server(app, loop).run(sockets=[sock])


@contextmanager
def running_server(
    app: ASGIApp, host: str = LOOPBACK, port: int = 0, loop: str = "auto", param: str = "port"
) -> Iterator[str]:
    """Serve ``app`` from a background thread; yields the base URL, stops on exit. ``param``
    names the port's parameter in errors."""
    sock = bind_socket(host, port, param)
    server = _server(app, loop)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server thread failed to start")
        time.sleep(0.005)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
