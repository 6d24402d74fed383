"""An offline LLM provider on a real socket, speaking every API with a renderer
(anthropic-messages, openai-chat, openai-responses, google-generate; routes from each API's
module).

Answers are deterministic: a script rule matching the request (last user message, mode,
prefill) gives the text or JSON answer, else the last user message is echoed. A request that
offers a tool whose input schema has the answer's structured member (``code_edits`` /
``yaml``) gets its JSON answer as a call of that tool, in the API's own tool-call shape: the
members the schema lists go into the tool input (in the schema's order), the text member when
the schema lacks it is written as plain text before the call (a model told to explain first,
then call the tool). Streams are rendered by :mod:`streambench.transcript.synth` and paced at
``rate`` tokens per second. Every streamed frame's send time (``time.monotonic()``) is logged in
:attr:`FakeProvider.sent` (the last 256 streams) so tests can compare a recorder's arrival
times against them.

Faults for failover demos, by request header ``x-fake-fail`` or a rule's ``fail``, in the
replay's fault grammar (:mod:`streambench.replay.faults`): ``http:529@start`` (or its alias
``529``; any status: the provider's HTTP error before the stream), ``error-event@delta=N``
(alias ``error@N``: the provider's error event after N content deltas),
``disconnect@delta=N`` (alias ``drop@N``: the connection dropped after N content deltas).
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from streambench._pacing import pacer
from streambench._server import body_writer
from streambench._yaml import load_yaml
from streambench.answer import SHAPES, mode_of_prefill
from streambench.errors import ConfigError, SpecError
from streambench.providers import registry
from streambench.providers.base import ToolCall, ToolChoice
from streambench.replay.faults import Fault, http_error, parse_fault
from streambench.sse import encode
from streambench.transcript import synth

LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua."
)
_RULE_KEYS = {"match", "mode", "prefill", "text", "json", "thinking", "fail", "model", "ascii"}
# What the fake provider can do of the fault vocabulary: it renders, it does not replay.
_FAKE_FAULTS = {"http": ("start",), "error-event": ("delta",), "disconnect": ("delta",)}


def parse_fake_fault(spec: str, where: str = "x-fake-fail") -> Fault:
    """A fault the fake provider plays: ``http:STATUS@start``, ``error-event@delta=N``,
    ``disconnect@delta=N`` (or the aliases ``529``, ``error@N``, ``drop@N``)."""
    try:
        fault = parse_fault(spec)
    except SpecError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if fault.at not in _FAKE_FAULTS.get(fault.kind, ()):
        raise ConfigError(
            f"{where}: fault {spec!r}: the fake provider plays http:STATUS@start (529),"
            " error-event@delta=N (error@N) and disconnect@delta=N (drop@N)"
        )
    return fault


@dataclass(frozen=True)
class Rule:
    """One script rule. ``match`` is a regex searched in the last user message."""

    match: re.Pattern[str] | None = None
    mode: str | None = None
    prefill: str | None = None
    text: str | None = None
    json: dict[str, Any] | None = None
    thinking: str = ""
    fail: Fault | None = None
    model: str | None = None
    ascii: bool = False


@dataclass(frozen=True)
class Prompt:
    """What the fake provider reads from a request, whatever the API."""

    api: str
    user_text: str
    prefill: str
    stream: bool
    model: str | None
    tools: ToolChoice = field(default_factory=ToolChoice)

    @property
    def mode(self) -> str:
        if not self.prefill:
            for mode, shape in SHAPES.items():
                if shape.structured_key in self.tools.input_keys:
                    return mode
        return mode_of_prefill(self.prefill)


def load_script(path: str | Path) -> list[Rule]:
    """Rules from a script YAML file: ``rules: [{match, mode, prefill, text|json, fail}, ...]``."""
    p = Path(path)
    return parse_script(load_yaml(p, "script"), str(p))


def parse_script(data: Any, source: str = "<script>") -> list[Rule]:
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ConfigError(f"{source}: a script is a mapping with a 'rules' list")
    rules = []
    for i, raw in enumerate(data["rules"]):
        where = f"{source}: rules[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a mapping")
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if raw.get("json") is not None and not isinstance(raw["json"], dict):
            raise ConfigError(f"{where}.json must be a mapping of answer fields")
        for key in ("match", "mode", "prefill", "text", "thinking", "fail", "model"):
            if raw.get(key) is not None and not isinstance(raw[key], str):
                got = type(raw[key]).__name__
                raise ConfigError(f"{where}.{key} must be a string, got {got}")
        if not isinstance(raw.get("ascii", False), bool):
            raise ConfigError(f"{where}.ascii must be true or false")
        try:
            pattern = re.compile(str(raw["match"])) if raw.get("match") is not None else None
        except re.error as exc:
            raise ConfigError(f"{where}.match is not a valid regex: {exc}") from None
        fail = raw.get("fail")
        rules.append(
            Rule(
                match=pattern,
                mode=raw.get("mode"),
                prefill=raw.get("prefill"),
                text=None if raw.get("text") is None else str(raw["text"]),
                json=raw.get("json"),
                thinking=str(raw.get("thinking") or ""),
                fail=None if fail is None else parse_fake_fault(str(fail), f"{where}.fail"),
                model=raw.get("model"),
                ascii=bool(raw.get("ascii", False)),
            )
        )
    return rules


# --- reading requests -----------------------------------------------------------------------


def read_prompt(api: str, body: dict[str, Any], path: str = "") -> Prompt:
    """What a request to ``path`` asks, read by the API's own module."""
    provider = registry.get(api)
    parts = provider.read_prompt(body)
    streaming = provider.is_streaming_request(path, body)
    model = provider.model_of(path, body)
    return Prompt(api, parts.user_text, parts.prefill, streaming, model, provider.read_tools(body))


# --- answers --------------------------------------------------------------------------------


def json_answer(fields: dict[str, Any], prefill: str, ensure_ascii: bool = False) -> str:
    """The JSON answer as the model writes it after ``prefill``: keys in the order the prefill
    starts them (``{"code_edits": [`` -> changes first, ``{"text_answer": "`` -> text first)."""
    first = sorted(fields, key=lambda k: (f'"{k}"' not in prefill, prefill.find(f'"{k}"')))
    full = json.dumps({k: fields[k] for k in first}, indent=2, ensure_ascii=ensure_ascii)
    common = 0
    while common < min(len(full), len(prefill)) and full[common] == prefill[common]:
        common += 1
    return full[common:]


def _default_fields(prompt: Prompt) -> dict[str, Any]:
    echo = f"Echo: {prompt.user_text}" if prompt.user_text else LOREM
    shape = SHAPES[prompt.mode]
    structured = [] if prompt.mode == "job_code" else "name: echo\nsteps: []\n"
    return {shape.structured_key: structured, shape.text_key: echo}


@dataclass(frozen=True)
class Answer:
    text: str
    thinking: str = ""
    fault: Fault | None = None
    model: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


def tool_answer(
    fields: dict[str, Any], tools: ToolChoice, text_key: str, ensure_ascii: bool = False
) -> Answer:
    """The answer as a call of the tool the request offers: the members its schema lists are
    its input, in the schema's order; the text member, when not among them, is written as
    plain text before the call."""
    inside = [k for k in tools.input_keys if k in fields]
    text = "" if text_key in inside else str(fields.get(text_key, ""))
    arguments = json.dumps({k: fields[k] for k in inside}, ensure_ascii=ensure_ascii)
    return Answer(text, tool_calls=(ToolCall(tools.called or "", arguments),))


def _structured(prompt: Prompt, fields: dict[str, Any], ensure_ascii: bool = False) -> Answer:
    """A structured answer: a tool call when the request offers one for it, else JSON text."""
    if not prompt.prefill and prompt.tools.called and prompt.mode != "chat":
        return tool_answer(fields, prompt.tools, SHAPES[prompt.mode].text_key, ensure_ascii)
    return Answer(json_answer(fields, prompt.prefill, ensure_ascii))


def answer_for(prompt: Prompt, rules: Sequence[Rule]) -> Answer:
    """The first matching rule's answer (continuing the prefill, or as a tool call), else the
    default echo."""
    for rule in rules:
        if rule.match is not None and not rule.match.search(prompt.user_text):
            continue
        if rule.mode is not None and rule.mode != prompt.mode:
            continue
        if rule.prefill is not None and not prompt.prefill.startswith(rule.prefill):
            continue
        if rule.json is not None:
            found = _structured(prompt, rule.json, rule.ascii)
        elif rule.text is not None:
            found = Answer(rule.text)
        else:
            found = _default_answer(prompt)
        return replace(found, thinking=rule.thinking, fault=rule.fail, model=rule.model)
    return _default_answer(prompt)


def _default_answer(prompt: Prompt) -> Answer:
    if prompt.mode == "chat":
        return Answer(f"Echo: {prompt.user_text}" if prompt.user_text else LOREM)
    return _structured(prompt, _default_fields(prompt))


# --- errors in each API's shape -------------------------------------------------------------


def _error_response(api: str, status: int) -> Response:
    # retry-after 0: failover demos retry at once
    retry_after = 0.0 if status in (429, 529) else None
    headers, body = http_error(api, status, retry_after)
    return Response(body, status_code=status, headers=headers)


class DroppedConnection(Exception):
    """Raised inside a stream to make the server abort the connection (``drop@N``)."""


# --- the app --------------------------------------------------------------------------------


SENT_KEPT = 256  # streamed responses FakeProvider.sent remembers (the last ones)


@dataclass
class SentStream:
    """One streamed response as sent: each frame's bytes and the time (``time.monotonic()``)
    the server wrote it (two appends per frame: no copy, no tuple for the collector to track)."""

    api: str
    pieces: list[bytes] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        """Every byte sent."""
        return b"".join(self.pieces)

    @property
    def frames(self) -> list[tuple[float, int]]:
        """``(monotonic_s, nbytes)`` per frame."""
        return [(t, len(piece)) for t, piece in zip(self.times, self.pieces, strict=True)]


@dataclass
class FakeProvider:
    """The fake provider's settings and what it sent: :attr:`sent` holds the last
    ``keep_sent`` streamed responses (older ones are dropped, so a long-running fake provider
    stays within bounded memory)."""

    rules: Sequence[Rule] = ()
    rate: float = 200.0  # content tokens per second; 0 sends without pauses
    ttfb_ms: float = 0.0
    keep_sent: int = SENT_KEPT
    sent: deque[SentStream] = field(init=False)

    def __post_init__(self) -> None:
        self.sent = deque(maxlen=self.keep_sent)

    def app(self) -> Starlette:
        routes = [
            Route(path, self._endpoint(api), methods=["POST"])
            for api in synth.APIS
            for path in registry.get(api).routes
        ]
        app = _App(routes=routes)
        app.state.provider = self
        return app

    def _endpoint(self, api: str):  # type: ignore[no-untyped-def]
        async def endpoint(request: Request) -> Response:
            try:
                body = json.loads(await request.body())
            except ValueError:
                return _error_response(api, 400)
            path = request.url.path
            prompt = read_prompt(api, body if isinstance(body, dict) else {}, path)
            answer = answer_for(prompt, self.rules)
            header = request.headers.get("x-fake-fail")
            try:
                fault = parse_fake_fault(header) if header else answer.fault
            except ConfigError as exc:
                return JSONResponse({"error": {"message": str(exc)}}, status_code=400)
            if fault is not None and fault.kind == "http":
                return _error_response(api, fault.status)
            model = answer.model or prompt.model
            if not prompt.stream:  # non-streaming: the JSON body
                payload = synth.render_json_response(api, answer.text, model, answer.tool_calls)
                return Response(payload, media_type="application/json")
            frames = _rendered(api, answer.text, answer.thinking, answer.tool_calls, model)
            log = SentStream(api)
            self.sent.append(log)
            schedule = _schedule(_apply_fault(api, frames, fault), self)
            drop = fault.spec if fault is not None and fault.kind == "disconnect" else None
            return _PacedStream(schedule, log, drop)

        return endpoint


_SERVER_SEND = "streambench.server_send"  # scope key: the server's own ASGI send


class _App(Starlette):
    """Starlette, noting the server's own ``send`` in the scope: the paced bodies go straight
    to it (:func:`~streambench._server.body_writer`), past starlette's wrappers of ``send``,
    which only note that the response started (the start still goes through them)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[_SERVER_SEND] = send
        await super().__call__(scope, receive, send)


class _PacedStream(Response):
    """The streamed answer: the loop's pacer sends each frame at its time (no task wakes up
    per frame), stopping when the client goes away; ``drop`` aborts the connection after."""

    media_type = "text/event-stream; charset=utf-8"

    def __init__(
        self, schedule: list[tuple[float, bytes]], log: SentStream, drop: str | None
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache"})
        self._schedule = schedule
        self._log = log
        self._drop = drop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        log = self._log
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})

        times, pieces, clock = log.times, log.pieces, time.monotonic

        def sent(_: float, data: bytes) -> None:
            # Called once the server wrote the frame: this is its send time.
            times.append(clock())
            pieces.append(data)

        write = body_writer(scope.get(_SERVER_SEND, send))
        bodies = self._schedule
        if not await pacer().send_bodies(send, bodies, on_sent=sent, receive=receive, write=write):
            return  # the client went away
        if self._drop is not None:
            raise DroppedConnection(self._drop)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


@functools.lru_cache(maxsize=64)
def _rendered(
    api: str, text: str, thinking: str, tool_calls: tuple[ToolCall, ...], model: str | None
) -> tuple[synth.Frame, ...]:
    """A streamed answer's frames, remembered: rendering (a JSON dump per event) costs more
    than sending, clients repeat prompts, and the same arguments give the same bytes."""
    frames = synth.render_frames(
        api, text=text, thinking=thinking, tool_calls=tool_calls, model=model
    )
    return tuple(frames)


def _schedule(frames: Sequence[synth.Frame], provider: FakeProvider) -> list[tuple[float, bytes]]:
    """Each frame's bytes at ``ttfb + tokens so far / rate`` from the request (absolute times),
    in one pass before the stream starts."""
    rate = provider.rate
    t_ms = provider.ttfb_ms
    timed = []
    for frame in frames:
        if frame.tokens and rate > 0:
            t_ms += frame.tokens / rate * 1000.0
        timed.append((t_ms, frame.data))
    return timed


def _apply_fault(
    api: str, frames: Sequence[synth.Frame], fault: Fault | None
) -> Sequence[synth.Frame]:
    """The frames up to the fault's delta count, plus the error event for ``error-event``."""
    if fault is None or fault.at != "delta":
        return frames
    kept: list[synth.Frame] = []
    deltas = 0
    for frame in frames:
        if frame.tokens and deltas >= fault.pos:
            break
        kept.append(frame)
        deltas += frame.tokens
    if fault.kind == "error-event":
        kept.append(synth.Frame(encode(registry.get(api).error_event(len(kept)))))
    return kept


def fake_provider_app(
    script: str | Path | Sequence[Rule] | None = None,
    rate: float = 200.0,
    ttfb_ms: float = 0.0,
) -> Starlette:
    """The fake provider as an ASGI app; its :class:`FakeProvider` is ``app.state.provider``."""
    rules = load_script(script) if isinstance(script, str | Path) else list(script or ())
    return FakeProvider(rules=rules, rate=rate, ttfb_ms=ttfb_ms).app()
