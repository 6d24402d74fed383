"""A recording reverse proxy: requests pass through unchanged, responses stream back chunk by
chunk as they arrive, and every streamed call is saved as one transcript with chunk timing."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from streambench.providers import apis
from streambench.record.recorder import Timeouts
from streambench.record.redact import Redactor
from streambench.transcript import Meta, Transcript, save
from streambench.transcript import Request as TranscriptRequest
from streambench.transcript import Response as TranscriptResponse

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


def _next_number(folder: Path) -> int:
    """One past the highest ``NNNN-`` file already in ``folder``: a restart never overwrites."""
    numbers = [int(m.group(1)) for p in folder.glob("*.yaml") if (m := _NUMBERED.match(p.name))]
    return max(numbers, default=0) + 1


_NUMBERED = re.compile(r"^(\d{4,})-")


def _warn(message: str) -> None:
    print(f"streambench proxy: {message}", file=sys.stderr, flush=True)


def proxy_app(
    upstream: str,
    out_dir: str | Path,
    redactor: Redactor | None = None,
    save_all: bool = False,
    timeouts: Timeouts | None = None,
) -> Starlette:
    """Forward every request to ``upstream``; save streamed calls (all calls with ``save_all``)
    into ``out_dir`` as ``NNNN-<api>.yaml``, numbered on from the files already there.
    ``app.state.saved`` lists the files written. An upstream that fails before its headers
    answers 502 with a message; a save that fails is reported on stderr and never touches the
    relayed stream."""
    redactor = redactor or Redactor()
    timeouts = timeouts or Timeouts()
    folder = Path(out_dir)
    counter = itertools.count(_next_number(folder) if folder.is_dir() else 1)
    client = httpx.AsyncClient(base_url=upstream.rstrip("/"), timeout=timeouts.httpx())
    saved: list[Path] = []

    async def forward(request: Request) -> Response:
        content = await request.body()
        url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        # identity upstream: the saved chunks are then the bytes the stream was made of.
        headers = [
            (k, v) for k, v in _forwardable(request.headers) if k.lower() != "accept-encoding"
        ]
        headers.append(("accept-encoding", "identity"))
        upstream_request = client.build_request(
            request.method, url, content=content, headers=headers
        )
        t0 = time.monotonic()
        recorded_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        try:
            response = await client.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            reason = redactor.text(f"{type(exc).__name__}: {exc}".rstrip(": "))
            _warn(f"{redactor.url(str(upstream_request.url))}: no response ({reason})")
            message = f"streambench proxy: the upstream gave no response ({reason})"
            return JSONResponse({"error": {"type": "bad_gateway", "message": message}}, 502)
        received = bytearray()
        chunks: list[tuple[float, int]] = []
        ended: str | None = "client disconnected"

        async def relay() -> AsyncIterator[bytes]:
            nonlocal ended
            try:
                async for chunk in response.aiter_raw():
                    chunks.append((round((time.monotonic() - t0) * 1000, 3), len(chunk)))
                    received.extend(chunk)
                    yield chunk
                    if time.monotonic() - t0 > timeouts.total_s:
                        ended = f"stopped at the total timeout {timeouts.total_s}s"
                        return
                ended = None
            except httpx.HTTPError as exc:
                ended = f"upstream ended early: {type(exc).__name__}"
                _warn(f"{redactor.url(str(upstream_request.url))}: {ended}")
            finally:
                # Shielded: a client that disconnects still gets its partial call saved.
                with anyio.CancelScope(shield=True):
                    await response.aclose()
                    try:
                        finish()
                    except Exception as exc:  # a lost recording must not break the stream
                        _warn(f"could not save the call: {redactor.text(str(exc))}")

        def finish() -> None:
            streamed = "text/event-stream" in response.headers.get("content-type", "")
            if not (streamed or save_all):
                return
            full_url = str(upstream_request.url)
            provider, api = apis.detect(full_url, bytes(received))
            transcript = Transcript(
                meta=Meta(
                    provider=provider,
                    api=api,
                    recorded_at=recorded_at,
                    source=f"streambench proxy {redactor.url(upstream)}",
                    notes=ended,
                    truncated=ended is not None,
                ),
                request=TranscriptRequest(
                    request.method, full_url, dict(request.headers), _json_or_text(content)
                ),
                response=TranscriptResponse(
                    status=response.status_code,
                    headers=dict(response.headers),
                    body=bytes(received),
                    chunks=chunks,
                ),
            )
            redacted = redactor.transcript(transcript)
            while True:
                target = folder / f"{next(counter):04d}-{api}.yaml"
                if not target.exists():
                    break
            saved.append(save(redacted, target))

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
