"""Deliver replay plans over real HTTP: an ASGI app for ``streambench serve`` (uvicorn).

Any method and path gets the next plan (cycling). Chunks go out at their planned times in
real time divided by ``speed``; a disconnect fault really drops the TCP connection mid-body
(the app raises, uvicorn closes the socket without the chunked terminator).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import SimpleNamespace

from starlette.types import Receive, Scope, Send

from streambench._pacing import pacer
from streambench._server import body_writer
from streambench.replay.plan import ReplayPlan
from streambench.replay.transports import ReplayLog
from streambench.transcript import Transcript


class DropConnection(Exception):
    """Raised inside the app to make the server close the connection mid-body."""


class _QuietDrops(logging.Filter):
    """uvicorn logs an app exception with a traceback; a planned drop is not an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DropConnection)


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


class ReplayApp:
    """ASGI app answering every request with the next plan; ``state.requests`` logs them."""

    def __init__(
        self,
        plans: Sequence[ReplayPlan | Transcript] | ReplayPlan | Transcript,
        speed: float = 1.0,
        cycle: bool = True,
    ) -> None:
        if not speed > 0:
            raise ValueError("speed must be above 0")
        self.log = ReplayLog(plans, cycle)
        self.speed = speed
        self.state = SimpleNamespace(log=self.log, requests=self.log.requests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
        try:
            plan, record = self.log.next(scope["method"], url, headers, body)
        except LookupError as exc:
            await _send_plain(send, 500, str(exc))
            return
        await send(
            {
                "type": "http.response.start",
                "status": plan.status,
                "headers": [(k.encode(), v.encode()) for k, v in plan.headers.items()],
            }
        )

        def sent(t_ms: float, data: bytes) -> None:
            record.delivered_bytes += len(data)
            record.t_ms.append(t_ms)

        write = body_writer(send)
        if not await pacer().send_bodies(
            send, plan.schedule(), self.speed, sent, receive, write=write
        ):
            record.client_closed = True  # the client went away before the stream's end
            return
        if plan.ending == "disconnect":
            record.disconnected = True
            # uvicorn then closes the socket without the chunked terminator
            raise DropConnection(f"planned disconnect after {record.delivered_bytes} bytes")
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        record.completed = True


async def _send_plain(send: Send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})


def replay_app(
    plans: Sequence[ReplayPlan | Transcript] | ReplayPlan | Transcript,
    speed: float = 1.0,
    cycle: bool = True,
) -> ReplayApp:
    """The ASGI app ``streambench serve`` runs: any method and path, plans in order, cycling."""
    return ReplayApp(plans, speed=speed, cycle=cycle)
