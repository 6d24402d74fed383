"""Backends whose HTTP surface is wrong the way real ones get it wrong, each an ASGI app
factory for ``--sut module:attr``; the misuse fixtures (``fixtures/http-*``) and the
multi-turn one (``chat-thread-second-turn``) must flag them:

* ``lenient_body``: "be liberal in what you accept": a body that is not JSON (or not UTF-8)
  is taken as the message itself, decoded with replacement characters, and answered 200;
* ``trusting_threads``: trusts the client's ``thread_id`` (the store is asked nothing), so an
  unknown thread is answered 200 on a thread nobody opened;
* ``always_sse``: streams whatever the client accepts, so an old client that asked for JSON
  gets an event stream it cannot read;
* ``detail_errors``: FastAPI's habit: refusals carry ``{"detail": ...}``, not the documented
  ``{"error": ...}`` the client shows;
* ``always_200``: a proxy in front that "normalises" every answer to 200, so a client reading
  the JSON answer takes a failed run for a finished one;
* ``raw_store_errors``: a store whose SQLite errors escape unwrapped (fixtures/store-failure's
  database that fails the writes a full disk fails): a reply already shown ends in a broken
  stream, and a message that cannot be stored in a 500 with a traceback page;
* ``forgets_history``: builds the prompt from the new message alone, so a thread's second
  turn is asked without the first;
* ``tool_turns_unsaved``: the tool changes-first design (``structured=tool``) with a thread
  store that saves the assistant turn from the model's text blocks, written before the answer
  moved into a tool call: the ``done`` event shows the answer, but the saved turn is empty, so
  a thread's second turn is asked without the first answer.

Each is the reference with the user's code swapped in at one place.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streambench.reference.app import ReferenceService, WireEvent, create_app, service_app
from streambench.reference.assistant import Reply
from streambench.reference.config import ReferenceConfig
from streambench.reference.store import Store


def _reference() -> Starlette:
    return create_app(ReferenceConfig(store=Store(":memory:")))


def lenient_body() -> ASGIApp:
    app = _reference()

    async def lenient(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            json.loads(raw)
        except ValueError:
            raw = json.dumps({"content": raw.decode("utf-8", "replace")}).encode()
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await app(scope, replay, send)

    return lenient


class _TrustingStore(Store):
    def thread_exists(self, thread_id: str) -> bool:
        return True  # the bug: the client's thread id is taken on trust


def trusting_threads() -> Starlette:
    store = _TrustingStore(":memory:")
    return create_app(ReferenceConfig(store=store))


def always_sse() -> ASGIApp:
    app = _reference()

    async def streaming(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != b"accept"]
            scope = {**scope, "headers": [*headers, (b"accept", b"text/event-stream")]}
        await app(scope, receive, send)

    return streaming


def detail_errors() -> ASGIApp:
    app = _reference()

    async def renamed(scope: Scope, receive: Receive, send: Send) -> None:
        status = 200

        async def rename(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message["headers"] if k != b"content-length"]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and status >= 400:
                answer = json.loads(message["body"])
                message = {**message, "body": json.dumps({"detail": answer["error"]}).encode()}
            await send(message)

        await app(scope, receive, rename)

    return renamed


def always_200() -> ASGIApp:
    app = _reference()

    async def normalised(scope: Scope, receive: Receive, send: Send) -> None:
        async def ok(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "status": 200}
            await send(message)

        await app(scope, receive, ok)

    return normalised


class _RawStore(Store):
    @contextmanager
    def _wrap(self) -> Iterator[None]:
        yield  # the bug: sqlite3 errors are not StoreError, which the service handles
        self._db.commit()


def raw_store_errors() -> Starlette:
    failing = Path(__file__).resolve().parents[2] / "fixtures/store-failure/failing-store.sqlite3"
    return create_app(ReferenceConfig(store=_RawStore(failing)))


class _ForgetsHistory(ReferenceService):
    async def message_events(self, *args: Any) -> AsyncIterator[WireEvent]:
        async for event in super().message_events(*args[:-1], []):  # the bug: no history
            yield event


def forgets_history() -> Starlette:
    return service_app(_ForgetsHistory(ReferenceConfig(), Store(":memory:")))


class _ToolTurnsUnsaved(ReferenceService):
    def _persist_reply(self, thread_id: str, reply: Reply) -> dict[str, Any]:
        # the bug: the saved turn is the model's text blocks; a tool-call answer has none
        shown = super()._persist_reply(thread_id, replace(reply, content=""))
        return {**shown, "content": reply.content}


def tool_turns_unsaved() -> Starlette:
    return service_app(_ToolTurnsUnsaved(ReferenceConfig(structured="tool"), Store(":memory:")))
