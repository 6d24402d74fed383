"""The official SDKs (anthropic, openai, google-genai) consume replays unchanged: through the
httpx transport and over HTTP.

For every corpus stream of the SDK's api, what the SDK parses (text, tool input, block types)
under a re-split equals what it parses from the recorded split; a stream the SDK rejects is
rejected the same way. A mid-stream disconnect raises what a dropped real connection raises.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from google import genai
from google.genai import types as genai_types
from tests.conftest import corpus_files

from streambench._server import running_server
from streambench.replay import ReplayPlan, ReplayTransport, build_plan, replay_app
from streambench.transcript import Transcript, load_inputs

FULL = os.environ.get("STREAMBENCH_FULL") == "1"
SPLITS = ("random", "deltas:1")
SDK_APIS = ("anthropic-messages", "openai-chat", "openai-responses", "google-generate")


_CACHE: dict[Path, Transcript] = {}


def _loaded(path: Path) -> Transcript:
    if path not in _CACHE:
        _CACHE[path] = load_inputs([path])[0]
    return _CACHE[path]


def _corpus(api: str) -> list[Path]:
    return [p for p in corpus_files() if _loaded(p).meta.api == api]


# --------------------------------------------------------------------------- SDK consumers


def _anthropic(client: anthropic.Anthropic) -> Any:
    with client.messages.stream(
        model="claude-test", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        message = stream.get_final_message()
    return [
        (block.type, getattr(block, "text", None), getattr(block, "input", None))
        for block in message.content
    ]


def _openai_chat(client: openai.OpenAI) -> Any:
    text: list[str] = []
    tools: dict[int, str] = {}
    for chunk in client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    ):
        for choice in chunk.choices:
            content = choice.delta.content
            if content:  # a string, or (mistral) a list of parts
                text.append(content if isinstance(content, str) else repr(content))
            for call in choice.delta.tool_calls or []:
                arguments = (call.function.arguments if call.function else None) or ""
                tools[call.index] = tools.get(call.index, "") + arguments
    return "".join(text), tools


def _openai_responses(client: openai.OpenAI) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic serializer noise on exotic output items
        with client.responses.stream(model="m", input="hi") as stream:
            response = stream.get_final_response()
    return response.output_text, [(o.type, getattr(o, "arguments", None)) for o in response.output]


def _google(client: genai.Client) -> Any:
    text: list[str] = []
    calls: list[tuple[str | None, Any]] = []
    for chunk in client.models.generate_content_stream(model="gemini-test", contents="hi"):
        for candidate in chunk.candidates or []:
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.text:
                    text.append(part.text)
                if part.function_call:
                    calls.append((part.function_call.name, part.function_call.args))
    return "".join(text), calls


def _google_client(api_key: str, base_url: str, http_client: httpx.Client, **_: Any) -> Any:
    options = genai_types.HttpOptions(
        base_url=base_url,
        httpx_client=http_client,
        retry_options=genai_types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=api_key, http_options=options)


CONSUMERS: dict[str, tuple[Callable[..., Any], Callable[[Any], Any]]] = {
    "anthropic-messages": (anthropic.Anthropic, _anthropic),
    "openai-chat": (openai.OpenAI, _openai_chat),
    "openai-responses": (openai.OpenAI, _openai_responses),
    "google-generate": (_google_client, _google),
}
# The HTTP client library each SDK is built on: anthropic and openai ship httpx2 (their fork).
HTTP_CLIENT: dict[str, Callable[..., Any]] = {api: httpx2.Client for api in CONSUMERS} | {
    "google-generate": httpx.Client
}


def _outcome(api: str, http: Any, base_url: str) -> tuple[str, Any]:
    sdk, consume = CONSUMERS[api]
    client = sdk(api_key="test", base_url=base_url, http_client=http, max_retries=0)
    try:
        return "ok", consume(client)
    except Exception as exc:  # the SDK's verdict on the stream is what we compare
        return type(exc).__name__, str(exc)


@contextmanager
def via_transport(plan: ReplayPlan) -> Iterator[tuple[Any, str]]:
    transport = ReplayTransport([plan], speed=math.inf)
    with HTTP_CLIENT[plan.api](transport=transport) as http:
        yield http, "http://upstream.test/v1"


@contextmanager
def via_server(plan: ReplayPlan) -> Iterator[tuple[Any, str]]:
    with running_server(replay_app([plan], speed=1e6)) as url, HTTP_CLIENT[plan.api]() as http:
        yield http, f"{url}/v1"


PATHS = {"transport": via_transport, "serve": via_server}


def _cases(path_name: str) -> list[Any]:
    cases = []
    for api in SDK_APIS:
        files = _corpus(api)
        if not FULL:  # short form; STREAMBENCH_FULL=1 runs every corpus stream of the api
            files = files[: 4 if path_name == "transport" else 2]
        cases += [pytest.param(api, f, id=f"{api}-{f.stem[:40]}") for f in files]
    return cases


def _check_same_parse(api: str, path: Path, deliver: Callable[..., Any]) -> None:
    transcript = _loaded(path)
    with deliver(build_plan(transcript)) as (http, base):
        expected = _outcome(api, http, base)
    for split in SPLITS:
        with deliver(build_plan(transcript, chunking=split, seed=7)) as (http, base):
            assert _outcome(api, http, base) == expected, split


@pytest.mark.parametrize(("api", "path"), _cases("transport"))
def test_sdk_parses_replay_through_transport(api: str, path: Path) -> None:
    _check_same_parse(api, path, via_transport)


@pytest.mark.parametrize(("api", "path"), _cases("serve"))
def test_sdk_parses_replay_through_serve(api: str, path: Path) -> None:
    _check_same_parse(api, path, via_server)


def test_corpus_covers_every_sdk_api() -> None:
    if not corpus_files():
        pytest.skip("corpus folder absent")
    assert all(_corpus(api) for api in SDK_APIS)


# ------------------------------------------------------------------------------ disconnect


def _some(api: str) -> Path:
    """A stream of the api with more than 3 events (a disconnect at event 3 cuts it)."""
    files = [f for f in _corpus(api) if len(build_plan(_loaded(f)).timeline) > 3]
    if not files:
        pytest.skip("corpus folder absent")
    return files[0]


DROPPED = "peer closed connection without sending complete message body (incomplete chunked read)"
# What each SDK raises when a real server drops the connection mid-body (the serve path is a
# real uvicorn socket closed without the chunked terminator): anthropic lets httpx2's error
# through while streaming, google-genai httpx's; openai wraps it in APIConnectionError.
RAISED_ON_DROP = {
    "anthropic-messages": ("RemoteProtocolError", DROPPED, None),
    "openai-chat": ("APIConnectionError", "Connection error.", "RemoteProtocolError"),
    "openai-responses": ("APIConnectionError", "Connection error.", "RemoteProtocolError"),
    "google-generate": ("RemoteProtocolError", DROPPED, None),
}


@pytest.mark.parametrize("api", SDK_APIS)
def test_mid_stream_disconnect_raises_what_a_dropped_connection_raises(api: str) -> None:
    plan = build_plan(_loaded(_some(api)), chunking="random", faults=["disconnect@event=3"])
    assert plan.ending == "disconnect"
    for path_name, deliver in PATHS.items():
        sdk, consume = CONSUMERS[api]
        with deliver(plan) as (http, base):
            client = sdk(api_key="test", base_url=base, http_client=http, max_retries=0)
            with pytest.raises(Exception) as raised:
                consume(client)
        wrapped = isinstance(raised.value, openai.APIConnectionError)
        cause = type(raised.value.__cause__).__name__ if wrapped else None
        seen = (type(raised.value).__name__, str(raised.value), cause)
        assert seen == RAISED_ON_DROP[api], path_name


def test_serve_really_drops_the_connection() -> None:
    transcript = _loaded(_some("anthropic-messages"))
    plan = build_plan(transcript, faults=["disconnect@bytes=100"])
    app = replay_app([plan], speed=1e6)
    with running_server(app) as url, httpx2.Client() as http:
        received = bytearray()
        with pytest.raises(httpx2.RemoteProtocolError), http.stream("POST", url) as response:
            for data in response.iter_raw():
                received += data
    assert bytes(received) == plan.body
    assert len(received) == 100
    assert app.state.requests[0].disconnected


def test_transport_logs_requests_and_early_close() -> None:
    plan = build_plan(_loaded(_some("openai-chat")), chunking="bytes:5")
    transport = ReplayTransport([plan], speed=math.inf)
    with httpx2.Client(transport=transport) as http:
        with http.stream("POST", "http://x.test/v1/chat", json={"a": 1}) as response:
            first = next(response.iter_raw())
        http.post("http://x.test/v1/chat", content=b"not json")
    early, full = transport.requests
    assert (early.method, early.url, early.json) == ("POST", "http://x.test/v1/chat", {"a": 1})
    assert early.client_closed and not early.completed
    assert early.delivered_bytes == len(first) == 5
    assert full.completed and not full.client_closed and full.json is None
    assert full.delivered_bytes == len(plan.body)
