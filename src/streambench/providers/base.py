"""The one protocol every provider API implements, and the helpers its modules share.

A provider API (``anthropic-messages``, ``openai-chat`` ...) is one module of this package
holding one :class:`ProviderAPI` subclass: how its URLs and events are recognised, what its
events carry, where the one content string of a delta event sits, its error bodies and
mid-stream error event, how a stream is rendered from plain content, and how a request body is
built and read. :mod:`streambench.providers.registry` lists them; every other table derives
from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from streambench.sse import SSEEvent

ContentKind = Literal["text", "tool_json", "thinking"]
Path = tuple[str | int, ...]
# Fixed epoch second for `created` fields: rendered bodies must not depend on the clock.
CREATED = 1754693439
REQUEST_ID = "req_011CStreambenchReplay000"
_WORDS = re.compile(r"\s*\S+|\s+")
_MAX_PIECE_CHARS = 6


# ------------------------------------------------------------------------------ content


@dataclass
class EventInfo:
    """What one event carries: content pieces, a stop reason, an error message."""

    pieces: list[tuple[ContentKind, str]] = field(default_factory=list)
    stop_reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Delta:
    """Where the one content string of an event sits (``path`` into its JSON), which stream it
    continues (``slot``) and what kind of content it is."""

    path: Path
    slot: tuple[Any, ...]
    kind: ContentKind = "text"


def error_message(error: Any) -> str:
    """A provider error object as one line: its message, type or code."""
    if isinstance(error, dict):
        message = error.get("message") or error.get("type") or error.get("code")
        return str(message) if message else json.dumps(error)
    return str(error)


def get_path(obj: Any, path: Path) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def set_path(obj: Any, path: Path, value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


def copy_json(value: Any) -> Any:
    """A deep copy of parsed JSON (dicts, lists, scalars): ~4x faster than ``copy.deepcopy``,
    which a content re-split paid once per piece."""
    kind = type(value)
    if kind is dict:
        return {key: copy_json(item) for key, item in value.items()}
    if kind is list:
        return [copy_json(item) for item in value]
    return value


def dumps(obj: Any) -> str:
    """Compact JSON with raw non-ASCII, the way providers write event data."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class ToolCallPiece:
    """A piece of one tool call's input JSON. ``call`` names the call within its stream (the
    content block index, the ``tool_calls`` index, the output item id; None for a call that is
    complete in this one event); ``name`` is set on the event that names the tool."""

    call: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True)
class Cut:
    """An answer ended early (``stop:max_tokens``): the wire ``reason``, the ``slot`` it ends in,
    the content each slot keeps, and the events before the cut (parsed)."""

    reason: str
    slot: tuple[Any, ...]
    kept: dict[tuple[Any, ...], str]
    before: list[dict[str, Any]]


@dataclass(frozen=True)
class Unit:
    """The block of the answer an event belongs to (a content block, an output item, a
    choice's content or tool call): ``key`` names it, ``kind`` says what it holds (text, tool,
    thinking, other; None when only its opening event says), ``position`` is its wire index
    (anthropic's ``index``, responses' ``output_index``; None where blocks are not numbered),
    ``opens``: the event starts the block (a tool call's id and name ride there)."""

    key: tuple[Any, ...]
    kind: str | None
    position: int | None = None
    opens: bool = False


# ------------------------------------------------------------------------------ render


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model makes: ``arguments`` is the JSON text it streams."""

    name: str
    arguments: str = "{}"
    id: str | None = None


@dataclass(frozen=True)
class ToolDefinition:
    """A tool a request offers the model; its input is a JSON object matching ``input_schema``."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(frozen=True)
class ToolChoice:
    """The tools a request offers (``names``), the one it forces the model to call first, and
    the top-level input members (schema ``properties``) of the tool the model would call."""

    names: tuple[str, ...] = ()
    forced: str | None = None
    input_keys: tuple[str, ...] = ()

    @property
    def called(self) -> str | None:
        """The tool the model calls: the forced one, else the only or first one offered."""
        return self.forced or (self.names[0] if self.names else None)


def tool_choice(offered: list[tuple[str, Any]], forced: str | None) -> ToolChoice:
    """A :class:`ToolChoice` from ``(name, input schema)`` pairs as a request lists them."""
    names = tuple(name for name, _ in offered)
    choice = ToolChoice(names, forced)
    schema = dict(offered).get(choice.called or "")
    properties = schema.get("properties") if isinstance(schema, dict) else None
    keys = tuple(str(k) for k in properties) if isinstance(properties, dict) else ()
    return ToolChoice(names, forced, keys)


@dataclass(frozen=True)
class Frame:
    """One SSE event of a rendered stream; ``tokens`` counts the content deltas it carries."""

    data: bytes
    tokens: int = 0


def split_deltas(text: str) -> list[str]:
    """Token-like pieces of ``text``, deterministic: words with their leading space, long words
    cut into 4-character pieces. ``"".join(split_deltas(t)) == t``.

    >>> split_deltas("Here are the pedestrian steps")
    ['Here', ' are', ' the', ' ped', 'estr', 'ian', ' steps']
    """
    pieces: list[str] = []
    for word in _WORDS.findall(text):
        while len(word) > _MAX_PIECE_CHARS:
            pieces.append(word[:4])
            word = word[4:]
        pieces.append(word)
    return pieces


def sse(data: Any, event: str | None = None, tokens: int = 0) -> Frame:
    payload = data if isinstance(data, str) else dumps(data)
    head = f"event: {event}\n" if event else ""
    return Frame(f"{head}data: {payload}\n\n".encode(), tokens)


def digest(*parts: object, n: int = 24) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:n]


@dataclass(frozen=True)
class Content:
    """What a rendered answer says, cut into deltas, with its ids."""

    deltas: list[str]
    thinking: list[str]
    tool_calls: Sequence[ToolCall]
    model: str
    message_id: str
    stop_reason: str | None

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    @property
    def output_tokens(self) -> int:
        args = sum(len(split_deltas(call.arguments)) for call in self.tool_calls)
        return len(self.deltas) + len(self.thinking) + args

    def call_id(self, index: int, prefix: str) -> str:
        call = self.tool_calls[index]
        return call.id or f"{prefix}{digest(self.message_id, index, call.name)}"


# ------------------------------------------------------------------------------ requests


def text_of(content: Any) -> str:
    """Text of a message's content: a string or a list of text parts (any API's spelling)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


@dataclass(frozen=True)
class PromptParts:
    """What a request asks: the last user message and the assistant prefill, if any."""

    user_text: str
    prefill: str


def last_user_and_prefill(messages: list[dict[str, Any]], content_key: str) -> PromptParts:
    """The last user message and a trailing assistant message (the prefill) of ``messages``."""
    prefill = ""
    if messages and messages[-1].get("role") in ("assistant", "model"):
        prefill = text_of(messages[-1].get(content_key))
    users = [m for m in messages if m.get("role") == "user"]
    return PromptParts(text_of(users[-1].get(content_key)) if users else "", prefill)


# ------------------------------------------------------------------------------ protocol


class ProviderAPI:
    """One provider API's wire knowledge. The defaults describe a generic SSE stream whose
    event data is the content; each API module overrides what its format says."""

    name: ClassVar[str] = "generic-sse"
    provider: ClassVar[str] = "unknown"  # when the host names none (loopback, fake servers)
    sdk: ClassVar[str | None] = None  # the official Python SDK's distribution name
    default_model: ClassVar[str] = "default"
    base_url: ClassVar[str] = ""
    path: ClassVar[str] = ""  # request path; ``{model}`` is filled in
    key_env: ClassVar[str | None] = None
    routes: ClassVar[tuple[str, ...]] = ()  # the fake provider's routes (starlette paths)
    id_prefix: ClassVar[str] = "resp_"
    stop_reasons: ClassVar[dict[str, str]] = {}  # end_turn | max_tokens | refusal -> wire value
    numbered: ClassVar[bool] = False  # events carry a consecutive ``sequence_number``
    refusal_key: ClassVar[str | None] = None  # a refusal streams as deltas of this field
    # the official SDK's stream refuses two tool calls sharing one id (tool:duplicate-id)
    unique_call_ids: ClassVar[bool] = False

    # --- detect
    def matches_url(self, host: str, segments: list[str], path: str) -> bool:
        return False

    def matches_event(self, kind: str, payload: dict[str, Any]) -> bool:
        return False

    # --- content
    def interpret(self, ev: SSEEvent) -> EventInfo:
        """Content pieces, stop reason and error of one event."""
        return EventInfo([("text", ev.data)])

    def locate(self, obj: dict[str, Any]) -> Delta | None:
        """Where the one content string of a delta event sits; None for any other event."""
        return None

    def tool_call_pieces(self, obj: dict[str, Any]) -> list[ToolCallPiece]:
        """The tool-call pieces one event's parsed data carries (parallel calls kept apart by
        ``call``); [] for an API without tool calls."""
        return []

    def separate(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """An event carrying several content strings at once (parallel tool calls sent
        together) as one event per string, to split each alone; [] when it is not one."""
        return []

    def shape_piece(self, obj: dict[str, Any], first: bool, last: bool) -> None:
        """Keep once-per-event envelope fields on the first (ids, names) or last (finish) piece
        when one delta event is cut into several."""

    def carries_envelope(self, obj: dict[str, Any]) -> bool:
        """Whether a delta event also carries once-per-stream fields (a role, a tool call's
        id, a finish reason, usage), so it must stay even without its content."""
        return False

    # --- content faults
    def keepalive(self) -> bytes | None:
        """One keep-alive event, as sent between deltas (an SSE comment unless the API has its
        own ping event); None for an API whose clients cannot take one."""
        return b": keep-alive\n\n"

    def on_cut(self, obj: dict[str, Any], cut: Cut) -> None:
        """Mark the delta event the answer now ends in (google puts the finish reason there)."""

    def after_cut(self, obj: dict[str, Any], cut: Cut) -> dict[str, Any] | None:
        """An event after the cut: kept, rewritten (stop reason, final texts) or dropped (None:
        content the answer no longer has). None of the base: an API without a stop reason."""
        raise NotImplementedError(f"{self.name} has no stop reason to end an answer with")

    def tool_call_ids(self, obj: dict[str, Any]) -> list[Path]:
        """Where an event names a tool call's id (every place, so all can be rewritten)."""
        return []

    def unit(self, obj: dict[str, Any]) -> Unit | None:
        """The block an event belongs to, for faults that move blocks (``blocks:reorder``,
        ``tool:split-args``); None for events outside blocks (pings, the stream's envelope)
        and for APIs whose blocks cannot be moved."""
        return None

    def reindex(self, obj: dict[str, Any], moved: dict[int, int]) -> None:
        """Renumber the block positions an event names after blocks moved (``moved``: old
        position -> new), the final response's list of blocks included."""

    def refuse(self, obj: dict[str, Any], where: Delta, piece: str) -> None:
        """A text delta event turned into a refusal delta carrying ``piece``."""
        raise NotImplementedError(f"{self.name} has no refusal deltas")

    def refused(
        self, obj: dict[str, Any], said: dict[tuple[Any, ...], str], events: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Any other event of a refused answer: kept, rewritten (finish reason, the done texts
        now holding the refusal ``said`` in each slot) or dropped; ``events``: the whole stream,
        parsed."""
        return obj

    # --- errors
    def http_error(self, status: int, retry_after_s: float | None) -> tuple[dict[str, str], Any]:
        """Headers and JSON body the provider answers with for HTTP ``status``."""
        return {"content-type": "application/json"}, {"error": {"code": status}}

    def error_event(self, sequence_number: int = 0) -> SSEEvent:
        """The provider's own mid-stream error event (after which it closes the stream)."""
        return SSEEvent(event="error", data=dumps({"error": "server error"}))

    # --- render
    def render(self, content: Content) -> list[Frame]:
        """The stream of ``content`` in this format, one frame per SSE event."""
        raise NotImplementedError(f"{self.name}: no renderer")

    def render_json(self, content: Content) -> dict[str, Any]:
        """The non-streaming (``"stream": false``) response body for ``content``."""
        raise NotImplementedError(f"{self.name}: no JSON renderer")

    # --- requests
    def url(self, model: str, base_url: str | None = None) -> str:
        return (base_url or self.base_url).rstrip("/") + self.path.format(model=model)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"} if key else {}

    def build_body(
        self, request: dict[str, Any] | None, prompt: str | None, model: str | None
    ) -> dict[str, Any]:
        """``request`` (or a minimal body) with ``prompt`` as the last user message, ``model``
        set and streaming switched on."""
        body = dict(request or {})
        if model or "model" not in body:
            body["model"] = model or self.default_model
        if prompt is not None:
            body["messages"] = _with_prompt(body.get("messages"), prompt)
        body["stream"] = True
        return body

    def read_prompt(self, body: dict[str, Any]) -> PromptParts:
        """The last user message and the prefill of a request body."""
        messages = body.get("messages")
        return last_user_and_prefill([m for m in messages or [] if isinstance(m, dict)], "content")

    def tool_fields(self, tool: ToolDefinition, forced: bool) -> dict[str, Any]:
        """The request-body fields offering ``tool``; ``forced``: the model must call it (and
        so calls it before writing any text)."""
        raise NotImplementedError(f"{self.name}: no tool calls")

    def read_tools(self, body: dict[str, Any]) -> ToolChoice:
        """The tools a request body offers, and the one it forces."""
        return ToolChoice()

    def response_text(self, body: Any) -> str:
        """The answer text of a non-streaming response body."""
        return ""

    def response_tool_calls(self, body: Any) -> list[ToolCall]:
        """The tool calls of a non-streaming response body, their input as JSON text."""
        return []

    def is_streaming_request(self, path: str, body: dict[str, Any]) -> bool:
        return bool(body.get("stream"))

    def model_of(self, path: str, body: dict[str, Any]) -> str | None:
        """The model a request names."""
        model = body.get("model")
        return str(model) if model else None


class JsonEventsAPI(ProviderAPI):
    """An API whose event data is a JSON object (every provider's but generic SSE)."""

    def interpret(self, ev: SSEEvent) -> EventInfo:
        info = EventInfo()
        try:
            payload = json.loads(ev.data)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            info.error = f"event {ev.event!r} at byte {ev.start}: data is not a JSON object"
            return info
        self.interpret_payload(ev, payload, info)
        return info

    def interpret_payload(self, ev: SSEEvent, payload: dict[str, Any], info: EventInfo) -> None:
        """Fill ``info`` from one event's parsed data."""
        raise NotImplementedError


def _with_prompt(messages: Any, prompt: str) -> list[dict[str, Any]]:
    """``messages`` with ``prompt`` as the last user message, a trailing prefill kept last."""
    items = [m for m in messages or [] if isinstance(m, dict)]
    prefill = [items.pop()] if items and items[-1].get("role") == "assistant" else []
    if items and items[-1].get("role") == "user":
        items.pop()
    return [*items, {"role": "user", "content": prompt}, *prefill]
