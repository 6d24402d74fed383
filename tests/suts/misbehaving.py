"""Broken on purpose: a backend that prints debug output to stdout and calls ``sys.exit`` (or
raises KeyboardInterrupt) from its stream, or configures itself through ``os.environ`` per
request, script habits moved into a server; streambench's own exit code, ``--format json``
output and environment must not change."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from tests.suts.sse_events import chunk


async def reply() -> AsyncIterator[bytes]:
    print("DEBUG: starting the reply")
    yield chunk("Hello")
    sys.exit(3)


async def messages(request: Request) -> Response:
    return StreamingResponse(reply(), media_type="text/event-stream")


async def interrupted() -> AsyncIterator[bytes]:
    yield chunk("Hello")
    raise KeyboardInterrupt  # a debugging leftover: "stop here"


async def interrupt(request: Request) -> Response:
    return StreamingResponse(interrupted(), media_type="text/event-stream")


async def configure(request: Request) -> Response:
    os.environ["OPENAI_BASE_URL"] = "http://localhost:9/v1"  # "point the SDK at the proxy"
    os.environ.pop("HOME", None)
    key = os.environ.get("ANTHROPIC_API_KEY", "")
    return StreamingResponse(iter([chunk(f"key set: {bool(key)}")]), media_type="text/event-stream")


app = Starlette(
    routes=[
        Route("/messages", messages, methods=["POST"]),
        Route("/interrupt", interrupt, methods=["POST"]),
        Route("/environ", configure, methods=["POST"]),
    ]
)
