"""A recording reverse proxy: requests pass through unchanged, responses stream back chunk by
chunk as they arrive, and every streamed call is saved as one transcript with chunk timing."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from streambench.providers import apis
from streambench.record.redact import Redactor
from streambench.transcript import Meta, Response, Transcript, save
from streambench.transcript import Request as TranscriptRequest

# Hop-by-hop headers describe one connection, not the message: never forwarded.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
     "content-length", "proxy-connection"}
)  # fmt: skip


def _forwardable(headers: Any) -> list[tuple[str, str]]:
    """End-to-end headers, a repeated one (Set-Cookie, Vary...) as often as it came: httpx's
    ``multi_items`` and starlette's ``items`` keep repeats; httpx's ``items`` joins them."""
    items = headers.multi_items() if isinstance(headers, httpx.Headers) else headers.items()
    return [(k, v) for k, v in items if k.lower() not in _HOP_BY_HOP]


def _json_or_text(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", errors="replace")


def proxy_app(
    upstream: str, out_dir: str | Path, redactor: Redactor | None = None, save_all: bool = False
) -> Starlette:
    """Forward every request to ``upstream``; save streamed calls (all calls with ``save_all``)
    into ``out_dir`` as ``NNNN-<api>.yaml``. ``app.state.saved`` lists the files written."""
    redactor = redactor or Redactor()
    folder = Path(out_dir)
    counter = itertools.count(1)
    client = httpx.AsyncClient(base_url=upstream.rstrip("/"), timeout=None)
    saved: list[Path] = []

    async def forward(request: Request) -> StreamingResponse:
        content = await request.body()
        url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        upstream_request = client.build_request(
            request.method, url, content=content, headers=_forwardable(request.headers)
        )
        t0 = time.monotonic()
        recorded_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        response = await client.send(upstream_request, stream=True)
        received = bytearray()
        chunks: list[tuple[float, int]] = []
        complete = False

        async def relay() -> AsyncIterator[bytes]:
            nonlocal complete
            try:
                async for chunk in response.aiter_raw():
                    chunks.append((round((time.monotonic() - t0) * 1000, 3), len(chunk)))
                    received.extend(chunk)
                    yield chunk
                complete = True
            finally:
                # Shielded: a client that disconnects still gets its partial call saved.
                with anyio.CancelScope(shield=True):
                    await finish()

        async def finish() -> None:
            await response.aclose()
            streamed = "text/event-stream" in response.headers.get("content-type", "")
            if not (streamed or save_all):
                return
            full_url = str(upstream_request.url)
            provider, api = apis.detect(full_url, bytes(received))
            encoded = "content-encoding" in response.headers
            transcript = Transcript(
                meta=Meta(
                    provider=provider,
                    api=api,
                    recorded_at=recorded_at,
                    source=f"streambench proxy {upstream}",
                    notes="content-encoded body kept as sent, chunk times dropped"
                    if encoded
                    else None,
                    truncated=not complete,
                ),
                request=TranscriptRequest(
                    request.method, full_url, dict(request.headers), _json_or_text(content)
                ),
                response=Response(
                    status=response.status_code,
                    headers=dict(response.headers),
                    body=bytes(received),
                    chunks=None if encoded else chunks,
                ),
            )
            target = folder / f"{next(counter):04d}-{api}.yaml"
            saved.append(save(redactor.transcript(transcript), target))

        relayed = StreamingResponse(relay(), status_code=response.status_code)
        relayed.raw_headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in _forwardable(response.headers)
        ]
        return relayed

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
    app = Starlette(routes=[Route("/{path:path}", forward, methods=methods)])
    app.state.saved = saved
    return app
