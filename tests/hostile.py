"""A hostile upstream for the hardening tests: it echoes every credential it is sent back in
its body (gzip-compressed whatever the client accepts), in error text and in response headers,
stalls or trickles on request, or closes the connection before any header."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

# One planted secret per format the redactor and the scanner know.
KEYS = {
    "anthropic": "sk-ant-api03-PLANTEDanthropic0123456789",
    "openai": "sk-PLANTEDopenai0123456789abcdefgh",
    "openai-project": "sk-proj-PLANTEDproject0123456789ab",
    "google": "AIzaSyPLANTEDgoogle0123456789abcdefghij",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkMTIzIn0.PLANTEDsignature0123",
    "aws": "AKIAPLANTED012345678",
    "amz-token": "FwoGZXIvYXdzEPLANTEDsessiontoken0123456789",
    "password": "PLANTEDpassw0rd9876",
    "token-param": "PLANTEDtokenparam0123456789",
    "cookie": "PLANTEDcookie0123456789",
}


MODES = ("gzip", "error", "stall", "trickle")


def _echo(request: Request, body: bytes) -> str:
    """Everything the request carried, as text (what a careless upstream reflects back)."""
    headers = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
    return f"url {request.url} headers {headers} body {body.decode(errors='replace')}"


async def _endpoint(request: Request) -> Response:
    body = await request.body()
    # The mode: an x-hostile header, or the first path segment (for clients that set headers).
    first = request.url.path.strip("/").split("/")[0]
    mode = request.headers.get("x-hostile") or (first if first in MODES else "gzip")
    leak = {
        "set-cookie": f"session={KEYS['cookie']}",
        "x-amz-security-token": KEYS["amz-token"],
        "x-echo-auth": f"Bearer {KEYS['jwt']}",
    }
    if mode == "error":
        message = f"Incorrect API key provided: {_echo(request, body)}"
        error = {"type": "error", "error": {"type": "authentication_error", "message": message}}
        return JSONResponse(error, status_code=401, headers=leak)
    if mode in ("stall", "trickle"):

        async def slow() -> Any:
            yield b'event: ping\ndata: {"type": "ping"}\n\n'
            for _ in range(600):
                await asyncio.sleep(1.0 if mode == "stall" else 0.05)
                if mode == "trickle":
                    yield b":"

        return StreamingResponse(slow(), media_type="text/event-stream")
    text = json.dumps({"type": "content_block_delta", "delta": {"text": _echo(request, body)}})
    sse = f"event: content_block_delta\ndata: {text}\n\n".encode()
    payload = gzip.compress(sse)

    async def chunks() -> Any:
        for i in range(0, len(payload), 64):
            yield payload[i : i + 64]

    headers = {**leak, "content-encoding": "gzip"}
    return StreamingResponse(chunks(), media_type="text/event-stream", headers=headers)


def hostile_app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", _endpoint, methods=["GET", "POST"])])


@contextmanager
def closes_before_headers() -> Iterator[str]:
    """A server that accepts, reads the request and closes without a byte: its base URL."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.settimeout(1)
            with suppress(OSError):
                conn.recv(65536)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        server.close()
