"""Run an ASGI app on a real loopback socket: in the foreground (CLI) or in a thread (tests)."""

from __future__ import annotations

import socket
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


def bind_socket(host: str = LOOPBACK, port: int = 0) -> socket.socket:
    """Bind before starting the server so the real port is known (``port=0`` picks a free one)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: must be 0 (any free port) to 65535")
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
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _server(app: ASGIApp, loop: str = "auto") -> uvicorn.Server:
    import uvicorn  # here: CLI modules read LOOPBACK without loading the server stack

    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False, loop=loop)
    return uvicorn.Server(config)


def serve_forever(
    app: ASGIApp,
    host: str = LOOPBACK,
    port: int = 0,
    on_ready: Callable[[str], None] | None = None,
    loop: str = "auto",
    sock: socket.socket | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's handlers shut down gracefully). ``loop`` is
    uvicorn's loop option ("auto", or "module:factory" of a custom event loop). ``sock``: a
    socket from :func:`bind_socket` (bound before the app was built), else host and port."""
    sock = sock or bind_socket(host, port)
    if on_ready is not None:
        on_ready(url_of(sock))
    _server(app, loop).run(sockets=[sock])


@contextmanager
def running_server(
    app: ASGIApp, host: str = LOOPBACK, port: int = 0, loop: str = "auto"
) -> Iterator[str]:
    """Serve ``app`` from a background thread; yields the base URL, stops on exit."""
    sock = bind_socket(host, port)
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
