"""The assistant (apollo #407 / #452): statuses, structured changes first, then text.

``reply_stream`` turns one user request into :data:`AssistantEvent` values. In ``job_code``
and ``workflow`` modes the model answers a JSON object whose start is prefilled; the answer is
parsed incrementally (:mod:`streambench.answer`), the structured member
(``code_edits`` / ``yaml``) becomes one :class:`Changes` event the moment it completes, and
the text member streams out decoded as it arrives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

from streambench.answer import (
    SHAPES,
    AnswerShape,
    JsonEvent,
    JsonObjectStream,
    JsonStreamError,
    MemberDone,
    MemberStart,
    Mode,
    Order,
    StringDelta,
    Structured,
    tool_input_schema,
)
from streambench.providers.apis import ToolCallPiece
from streambench.providers.base import ToolDefinition
from streambench.reference.chain import (
    AllProvidersFailed,
    Chunk,
    LLMClient,
    StreamFailed,
)
from streambench.reference.edits import resolve_code_edits
from streambench.reference.providers import LLMRequest
from streambench.reference.statuses import (
    FORMATTING_WORKFLOW,
    THINKING,
    WRITING_CODE,
    StatusPicker,
    opening_pool,
)

SYSTEM_PROMPTS: dict[Mode, str] = {
    "chat": "You are a helpful assistant for a workflow automation platform. Answer concisely.",
    "job_code": (
        "You edit the user's job code. Answer with one JSON object with two members, in the "
        'order the answer was started with: "code_edits", a list of edits, each '
        '{"action": "replace", "old_code": exact text that occurs once, "new_code": ...} or '
        '{"action": "rewrite", "new_code": the whole new code}; and "text_answer", a short '
        "markdown explanation. Escape strings as JSON requires."
    ),
    "workflow": (
        "You write workflow YAML. Answer with one JSON object with two members, in the order "
        'the answer was started with: "yaml", the complete workflow YAML as a string; and '
        '"text", a short markdown explanation. Escape strings as JSON requires.'
    ),
}
# The tool carrying the structured part (structured="tool"), and what it is told per order.
TOOL_NAMES: dict[Mode, str] = {"job_code": "edit_job_code", "workflow": "write_workflow"}
TOOL_PROMPTS: dict[tuple[Mode, Order], str] = {
    ("job_code", "changes_first"): (
        "You edit the user's job code. Call the edit_job_code tool at once: its code_edits "
        '(each {"action": "replace", "old_code": exact text that occurs once, "new_code": ...} '
        'or {"action": "rewrite", "new_code": the whole new code}), then its text_answer, a '
        "short markdown explanation. Write nothing outside the tool call."
    ),
    ("job_code", "text_first"): (
        "You edit the user's job code. First explain the change in a short markdown answer, "
        "then call the edit_job_code tool with the code_edits (each "
        '{"action": "replace", "old_code": exact text that occurs once, "new_code": ...} or '
        '{"action": "rewrite", "new_code": the whole new code}).'
    ),
    ("workflow", "changes_first"): (
        "You write workflow YAML. Call the write_workflow tool at once: its yaml, the complete "
        "workflow YAML, then its text, a short markdown explanation. Write nothing outside the "
        "tool call."
    ),
    ("workflow", "text_first"): (
        "You write workflow YAML. First explain the workflow in a short markdown answer, then "
        "call the write_workflow tool with the complete workflow YAML as its yaml."
    ),
}


@dataclass(frozen=True)
class AssistantRequest:
    content: str
    mode: Mode = "chat"
    expression: str = ""
    order: Order = "changes_first"
    seed: int = 0
    history: Sequence[dict[str, str]] = ()


@dataclass(frozen=True)
class Status:
    message: str


@dataclass(frozen=True)
class Changes:
    """``{"code", "code_edits", "patches_applied", "warnings"}`` or ``{"yaml"}``."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class Text:
    content: str


@dataclass(frozen=True)
class Reply:
    """The finished answer (terminal)."""

    content: str
    code: str | None
    yaml: str | None
    provider: str
    model: str
    latency_ms: float


@dataclass(frozen=True)
class Failure:
    """The answer failed (terminal); ``partial_content`` is the text already shown."""

    partial_content: str
    message: str


AssistantEvent = Status | Changes | Text | Reply | Failure


class AnswerIncomplete(Exception):
    """The model's answer ended before a required part was complete."""


@dataclass(frozen=True)
class _Shape:
    """An answer shape in the order the request asked for."""

    members: AnswerShape
    order: Order

    @property
    def struct_key(self) -> str:
        return self.members.structured_key

    @property
    def text_key(self) -> str:
        return self.members.text_key

    @property
    def first_key(self) -> str:
        return self.members.first_key(self.order)

    @property
    def prefill(self) -> str:
        return self.members.prefill(self.order)


def answer_tool(mode: Mode, order: Order) -> ToolDefinition:
    """The tool the model is offered for the structured part (``structured="tool"``)."""
    return ToolDefinition(
        TOOL_NAMES[mode], "Apply the answer to the user's editor.", tool_input_schema(mode, order)
    )


class _PlainAnswer:
    prefill = ""
    tool: ToolDefinition | None = None

    def __init__(self) -> None:
        self._parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def feed(self, text: str) -> list[AssistantEvent]:
        self._parts.append(text)
        return [Text(text)]

    def feed_tool(self, piece: ToolCallPiece) -> list[AssistantEvent]:
        return []  # chat offers no tool: providers never yield tool pieces for it

    def finish(self) -> tuple[str, str | None, str | None]:
        return self.text, None, None


@dataclass
class _StructuredAnswer:
    """Parses a job_code / workflow answer; :meth:`feed` takes upstream text deltas.

    The answer continues the prefill. A model that cannot be prefilled (openai-chat) may
    instead restart the object itself, optionally inside a code fence: the first upstream
    characters decide which (see :func:`_echoes_prefill`).
    """

    mode: Mode
    shape: _Shape
    expression: str
    statuses: StatusPicker
    _parser: JsonObjectStream = field(default_factory=JsonObjectStream)
    _undecided: str | None = ""
    _text_parts: list[str] = field(default_factory=list)
    _in_struct: bool = False
    _announce: bool = False
    _struct_done: bool = False
    _text_state: Literal["absent", "open", "done"] = "absent"
    code: str | None = None
    yaml: str | None = None

    tool: ToolDefinition | None = None

    @property
    def prefill(self) -> str:
        return self.shape.prefill

    @property
    def text(self) -> str:
        return "".join(self._text_parts)

    def feed(self, text: str) -> list[AssistantEvent]:
        out: list[AssistantEvent] = []
        if self._undecided is not None:
            buffered = self._undecided + text
            echo = _echoes_prefill(buffered, self.shape.first_key)
            if echo is None:
                self._undecided = buffered
                return out
            self._undecided = None
            if echo:
                text = buffered[buffered.index("{") :]
            else:
                self._apply(self._parser.feed(self.prefill), out)
                self._announce = self._in_struct
                text = buffered
        if self._announce:
            self._announce = False
            out.append(Status(self.statuses.pick(WRITING_CODE)))
        self._apply(self._parser.feed(text), out, upstream=True)
        return out

    def feed_tool(self, piece: ToolCallPiece) -> list[AssistantEvent]:
        return []  # a prefilled answer offers no tool: providers never yield tool pieces

    def finish(self) -> tuple[str, str | None, str | None]:
        if self._undecided is not None:
            self._undecided, pending = None, self._undecided
            self._apply(self._parser.feed(self.prefill + pending), [])
        if not self._struct_done:
            raise AnswerIncomplete(f"the answer ended before {self.shape.struct_key} was complete")
        if self._text_state == "open":
            raise AnswerIncomplete(f"the answer ended inside {self.shape.text_key}")
        return self.text, self.code, self.yaml

    def _apply(self, events: list[JsonEvent], out: list[AssistantEvent], upstream: bool = False):
        for event in events:
            if isinstance(event, StringDelta):
                if event.key == self.shape.text_key and self._text_state == "open":
                    self._text_parts.append(event.text)
                    out.append(Text(event.text))
            elif isinstance(event, MemberStart):
                if event.key == self.shape.struct_key and not self._struct_done:
                    self._in_struct = True
                    if upstream and self.mode == "job_code":
                        out.append(Status(self.statuses.pick(WRITING_CODE)))
                elif event.key == self.shape.text_key and self._text_state == "absent":
                    self._text_state = "open"
            elif isinstance(event, MemberDone):
                if event.key == self.shape.struct_key and not self._struct_done:
                    self._in_struct = False
                    self._struct_done = True
                    out.extend(self._changes(event.value))
                elif event.key == self.shape.text_key and self._text_state == "open":
                    self._text_state = "done"

    def _changes(self, value: Any) -> list[AssistantEvent]:
        if self.mode == "workflow":
            if not isinstance(value, str):
                raise JsonStreamError("yaml is not a string")
            self.yaml = value
            return [Status(FORMATTING_WORKFLOW), Changes({"yaml": value})]
        resolved = resolve_code_edits(self.expression, value)
        self.code = resolved.code
        payload = {
            "code": resolved.code,
            "code_edits": value,
            "patches_applied": resolved.patches_applied,
            "warnings": resolved.warnings,
        }
        return [Changes(payload)]


@dataclass
class _ToolAnswer(_StructuredAnswer):
    """The structured part as the input of a tool call, parsed as its pieces arrive; plain
    text beside the call (before it, text first) streams out as it is."""

    _call: str | None = None
    _called: bool = False
    _fed: bool = False  # some of the call's input arrived

    @property
    def prefill(self) -> str:
        return ""

    def feed(self, text: str) -> list[AssistantEvent]:
        self._text_parts.append(text)
        return [Text(text)]

    def feed_tool(self, piece: ToolCallPiece) -> list[AssistantEvent]:
        assert self.tool is not None
        if piece.name is not None and not self._fed:
            # our call starts (again, when a provider failed over before sending any input)
            if piece.name != self.tool.name:
                return []
            self._call, self._called = piece.call, True
        elif not self._called or piece.call != self._call:
            return []  # another tool's call (parallel calls are told apart by ``call``)
        self._fed = self._fed or bool(piece.arguments)
        out: list[AssistantEvent] = []
        self._apply(self._parser.feed(piece.arguments), out, upstream=True)
        return out

    def finish(self) -> tuple[str, str | None, str | None]:
        if not self._called:
            raise AnswerIncomplete(f"the model did not call {self.tool and self.tool.name}")
        if not self._parser.ended:
            raise AnswerIncomplete("the tool input ended before its closing brace")
        return super().finish()


def _echoes_prefill(answer: str, first_key: str) -> bool | None:
    """True when ``answer`` restarts the object (``{"<first_key>"``, maybe in a code fence),
    False when it continues the prefill, None while too little has arrived to tell."""
    rest = answer.lstrip()
    if len(rest) < 3 and "```".startswith(rest):
        return None
    if rest.startswith("```"):
        newline = rest.find("\n")
        if newline < 0:
            return None
        rest = rest[newline + 1 :].lstrip()
        if not rest:
            return None
    if rest[0] != "{":
        return False
    rest = rest[1:].lstrip()
    if not rest:
        return None
    if rest[0] != '"':
        return False
    end = rest.find('"', 1)
    if end < 0:
        return None
    return rest[1:end] == first_key


def user_prompt(request: AssistantRequest) -> str:
    if request.mode == "chat" or not request.expression:
        return request.content
    label = "job code" if request.mode == "job_code" else "workflow YAML"
    return f"My current {label}:\n```\n{request.expression}\n```\n\n{request.content}"


class Assistant:
    """``structured``: how the structured part is asked for (a prefill, or a tool call)."""

    def __init__(
        self, llm: LLMClient, max_tokens: int = 4096, structured: Structured = "prefill"
    ) -> None:
        self.llm = llm
        self.max_tokens = max_tokens
        self.structured = structured

    async def reply_stream(self, request: AssistantRequest) -> AsyncIterator[AssistantEvent]:
        statuses = StatusPicker(request.seed)
        yield Status(THINKING)
        yield Status(statuses.pick(opening_pool(request.mode, bool(request.expression.strip()))))
        answer: _PlainAnswer | _StructuredAnswer
        system = SYSTEM_PROMPTS[request.mode]
        if request.mode == "chat":
            answer = _PlainAnswer()
        elif self.structured == "tool":
            shape = _Shape(SHAPES[request.mode], request.order)
            tool = answer_tool(request.mode, request.order)
            answer = _ToolAnswer(request.mode, shape, request.expression, statuses, tool=tool)
            system = TOOL_PROMPTS[request.mode, request.order]
        else:
            shape = _Shape(SHAPES[request.mode], request.order)
            answer = _StructuredAnswer(request.mode, shape, request.expression, statuses)
        llm_request = LLMRequest(
            system=system,
            messages=[*request.history, {"role": "user", "content": user_prompt(request)}],
            prefill=answer.prefill,
            max_tokens=self.max_tokens,
            tool=answer.tool,
            tool_forced=request.order == "changes_first",
        )
        try:
            async with aclosing(self.llm.generate_stream(llm_request)) as stream:
                async for event in stream:
                    if isinstance(event, Chunk):
                        items = (
                            answer.feed(event.text)
                            if event.tool is None
                            else answer.feed_tool(event.tool)
                        )
                        for item in items:
                            yield item
                    elif isinstance(event, StreamFailed):
                        yield Failure(answer.text, event.message)
                        return
                    else:
                        text, code, yaml = answer.finish()
                        yield Reply(text, code, yaml, event.provider, event.model, event.latency_ms)
                        return
        except AllProvidersFailed as exc:
            yield Failure("", str(exc))
        except (JsonStreamError, AnswerIncomplete) as exc:
            yield Failure(answer.text, f"the model's answer is unusable: {exc}")
