"""The answer format, in one place: modes, the members of a structured answer, the prefills a
system may start it with, and the incremental JSON parser that reads it one delta at a time.

In ``job_code`` and ``workflow`` modes the model answers one JSON object with a structured
member (``code_edits`` / ``yaml``) and a text member (``text_answer`` / ``text``), in the order
the prefill starts them. The reference stack writes answers with it, the grader reads upstream
answers with it and the fake provider answers with it, so the three agree by construction.

:class:`JsonObjectStream` is a character-level state machine over that object: it reports each
top-level member as it starts, streams the decoded text of top-level string values, and hands
over each member's parsed value the moment its last character arrives. It never matches fixed
delimiter strings, so any JSON whitespace (``],\\n  "text_answer": "`` or
``],"text_answer":"``) and any split of the input work the same.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any, Literal

Mode = Literal["chat", "job_code", "workflow"]
Order = Literal["changes_first", "text_first"]
MODES: tuple[Mode, ...] = ("chat", "job_code", "workflow")
ORDERS: tuple[Order, ...] = ("changes_first", "text_first")


@dataclass(frozen=True)
class AnswerShape:
    """The two members of a structured answer: the part applied to the editor, and the text."""

    structured_key: str
    text_key: str

    @property
    def keys(self) -> tuple[str, str]:
        return (self.structured_key, self.text_key)

    def first_key(self, order: Order) -> str:
        return self.structured_key if order == "changes_first" else self.text_key

    def prefill(self, order: Order) -> str:
        """The start of the object the model is asked to continue, in ``order``."""
        first = self.first_key(order)
        opener = "[" if first == "code_edits" else '"'
        return f'{{\n  "{first}": {opener}'


SHAPES: dict[str, AnswerShape] = {
    "job_code": AnswerShape("code_edits", "text_answer"),
    "workflow": AnswerShape("yaml", "text"),
}
STRUCTURED_MODES = frozenset(SHAPES)
# The members of one code edit inside ``code_edits``.
EDIT_KEYS = ("action", "old_code", "new_code")
# Every key the answer format defines: what must never leak into the text a user reads.
MEMBER_KEYS: tuple[str, ...] = (*(k for s in SHAPES.values() for k in s.keys), *EDIT_KEYS)


# How the structured part reaches the system: JSON continued from a prefill, or a tool call.
Structured = Literal["prefill", "tool"]
STRUCTURED: tuple[Structured, ...] = ("prefill", "tool")
_MEMBER_SCHEMAS: dict[str, dict[str, Any]] = {
    "code_edits": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["replace", "rewrite"]},
                "old_code": {"type": "string"},
                "new_code": {"type": "string"},
            },
            "required": ["action", "new_code"],
        },
    },
    "yaml": {"type": "string"},
    "text_answer": {"type": "string"},
    "text": {"type": "string"},
}


def tool_input_keys(mode: str, order: Order) -> tuple[str, ...]:
    """The members of the answer tool's input: changes first, the structured member then the
    text; text first, only the structured member (the text is written before the call)."""
    shape = SHAPES[mode]
    return shape.keys if order == "changes_first" else (shape.structured_key,)


def tool_input_schema(mode: str, order: Order) -> dict[str, Any]:
    """The JSON schema of the answer tool's input (members in the order they are written)."""
    keys = tool_input_keys(mode, order)
    return {
        "type": "object",
        "properties": {key: _MEMBER_SCHEMAS[key] for key in keys},
        "required": list(keys),
    }


def prefill_for(mode: str, order: Order = "changes_first") -> str:
    """The start of the answer the model is asked to continue ("" in chat mode)."""
    shape = SHAPES.get(mode)
    return shape.prefill(order) if shape else ""


def known_prefills(mode: str) -> tuple[str, ...]:
    """Every start a system may have given the answer: each order's prefill, then "" (the model
    restarts the object itself, as openai-chat models do)."""
    shape = SHAPES.get(mode)
    return (*(shape.prefill(order) for order in ORDERS), "") if shape else ("",)


def mode_of_prefill(prefill: str) -> Mode:
    """The mode whose member a prefill starts (chat when it starts none)."""
    for mode, shape in SHAPES.items():
        if any(f'"{key}"' in prefill for key in shape.keys):
            return mode  # type: ignore[return-value]
    return "chat"


REPLACEMENT = "\ufffd"
_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_STRING_SPECIAL = re.compile(r'["\\]')
_NESTED_SPECIAL = re.compile(r'["\\\[\]{}]')
_SCALAR_END = re.compile(r"[\s,}\]]")
_WHITESPACE = " \t\r\n"


class JsonStreamError(ValueError):
    """The model's answer is not the JSON object it was asked for."""


class JsonStringDecoder:
    """Decodes the inside of one JSON string as it arrives, up to its closing quote.

    Holds back only what cannot be decoded yet: an incomplete escape (``\\``, ``\\u00``) and a
    high surrogate waiting for its low half. Lone surrogates decode to U+FFFD, so the output
    is always valid Unicode. Raw control characters are passed through (models emit them).

    >>> d = JsonStringDecoder()
    >>> d.feed('caf\\\\u00'), d.feed('e9 \\\\n"}')
    (('caf', 6), ('é \\n', 8))
    """

    def __init__(self) -> None:
        self.done = False
        self._escape = ""
        self._high_surrogate: int | None = None
        self._parts: list[str] = []

    @property
    def value(self) -> str:
        """Everything decoded so far (the whole string once :attr:`done`)."""
        return "".join(self._parts)

    def feed(self, text: str) -> tuple[str, int]:
        """Decode ``text``; returns the newly decoded characters and how many input characters
        were consumed (fewer than ``len(text)`` only when the closing quote was reached)."""
        out: list[str] = []
        i, n = 0, len(text)
        while i < n and not self.done:
            if self._escape:
                if len(self._escape) == 1:
                    self._escape += text[i]
                    i += 1
                else:  # collecting the 4 hex digits of \uXXXX
                    take = min(6 - len(self._escape), n - i)
                    self._escape += text[i : i + take]
                    i += take
                if self._escape[1] != "u" or len(self._escape) == 6:
                    out.append(self._finish_escape())
                continue
            match = _STRING_SPECIAL.search(text, i)
            end = match.start() if match else n
            if end > i:
                out.append(self._flush_high_surrogate())
                out.append(text[i:end])
                i = end
            if match is None:
                break
            i += 1
            if match.group() == '"':
                out.append(self._flush_high_surrogate())
                self.done = True
            else:
                self._escape = "\\"
        decoded = "".join(out)
        self._parts.append(decoded)
        return decoded, i

    def _flush_high_surrogate(self) -> str:
        if self._high_surrogate is None:
            return ""
        self._high_surrogate = None
        return REPLACEMENT

    def _finish_escape(self) -> str:
        escape, self._escape = self._escape, ""
        if escape[1] != "u":
            if escape[1] not in _SIMPLE_ESCAPES:
                raise JsonStreamError(f"invalid escape {escape!r} in a JSON string")
            return self._flush_high_surrogate() + _SIMPLE_ESCAPES[escape[1]]
        try:
            code = int(escape[2:], 16)
        except ValueError:
            raise JsonStreamError(f"invalid escape {escape!r} in a JSON string") from None
        if 0xD800 <= code < 0xDC00:
            held = self._flush_high_surrogate()
            self._high_surrogate = code
            return held
        if 0xDC00 <= code < 0xE000:
            if self._high_surrogate is None:
                return REPLACEMENT
            high, self._high_surrogate = self._high_surrogate, None
            return chr(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
        return self._flush_high_surrogate() + chr(code)


@dataclass(frozen=True)
class MemberStart:
    """A top-level member's value begins (its key is known)."""

    key: str


@dataclass(frozen=True)
class StringDelta:
    """Newly decoded characters of a top-level string value."""

    key: str
    text: str


@dataclass(frozen=True)
class MemberDone:
    """A top-level member's value is complete: ``value`` is the parsed JSON value."""

    key: str
    value: Any


@dataclass(frozen=True)
class ObjectEnd:
    """The closing brace of the answer object."""


JsonEvent = MemberStart | StringDelta | MemberDone | ObjectEnd


class _State(Enum):
    BEFORE_OBJECT = auto()
    BEFORE_KEY = auto()
    IN_KEY = auto()
    BEFORE_COLON = auto()
    BEFORE_VALUE = auto()
    IN_STRING_VALUE = auto()
    IN_NESTED_VALUE = auto()
    IN_SCALAR_VALUE = auto()
    AFTER_VALUE = auto()
    END = auto()


class JsonObjectStream:
    """Push parser for one JSON object: :meth:`feed` text, get :data:`JsonEvent` values back.

    Text after the closing brace (a trailing code fence, say) is ignored.
    """

    def __init__(self) -> None:
        self._state = _State.BEFORE_OBJECT
        self._key = ""
        self._string: JsonStringDecoder | None = None
        self._raw: list[str] = []
        self._depth = 0
        self._in_nested_string = False
        self._nested_escape = False

    @property
    def ended(self) -> bool:
        return self._state is _State.END

    def feed(self, text: str) -> list[JsonEvent]:
        events: list[JsonEvent] = []
        i, n = 0, len(text)
        while i < n:
            state = self._state
            if state is _State.END:
                break
            if state is _State.IN_STRING_VALUE or state is _State.IN_KEY:
                i = self._feed_string(text, i, events)
            elif state is _State.IN_NESTED_VALUE:
                i = self._feed_nested(text, i, events)
            elif state is _State.IN_SCALAR_VALUE:
                i = self._feed_scalar(text, i, events)
            else:
                char = text[i]
                i += 1
                if char not in _WHITESPACE:
                    self._structural(char, events)
        return events

    def _structural(self, char: str, events: list[JsonEvent]) -> None:
        state = self._state
        if state is _State.BEFORE_OBJECT and char == "{":
            self._state = _State.BEFORE_KEY
        elif state is _State.BEFORE_KEY and char == '"':
            self._string = JsonStringDecoder()
            self._state = _State.IN_KEY
        elif state in (_State.BEFORE_KEY, _State.AFTER_VALUE) and char == "}":
            self._state = _State.END
            events.append(ObjectEnd())
        elif state is _State.BEFORE_COLON and char == ":":
            self._state = _State.BEFORE_VALUE
        elif state is _State.AFTER_VALUE and char == ",":
            self._state = _State.BEFORE_KEY
        elif state is _State.BEFORE_VALUE:
            events.append(MemberStart(self._key))
            if char == '"':
                self._string = JsonStringDecoder()
                self._state = _State.IN_STRING_VALUE
            elif char in "[{":
                self._raw = [char]
                self._depth = 1
                self._state = _State.IN_NESTED_VALUE
            else:
                self._raw = [char]
                self._state = _State.IN_SCALAR_VALUE
        else:
            where = f" after key {self._key!r}" if self._key else ""
            raise JsonStreamError(f"unexpected {char!r}{where} in the answer object")

    def _feed_string(self, text: str, i: int, events: list[JsonEvent]) -> int:
        assert self._string is not None
        decoded, used = self._string.feed(text[i:])
        if self._state is _State.IN_KEY:
            if self._string.done:
                self._key = self._string.value
                self._state = _State.BEFORE_COLON
        else:
            if decoded:
                events.append(StringDelta(self._key, decoded))
            if self._string.done:
                events.append(MemberDone(self._key, self._string.value))
                self._state = _State.AFTER_VALUE
        return i + used

    def _feed_nested(self, text: str, i: int, events: list[JsonEvent]) -> int:
        n = len(text)
        start = i
        while i < n:
            if self._nested_escape:
                self._nested_escape = False
                i += 1
                continue
            match = _NESTED_SPECIAL.search(text, i)
            if match is None:
                i = n
                break
            char = match.group()
            i = match.end()
            if self._in_nested_string:
                if char == "\\":
                    self._nested_escape = True
                elif char == '"':
                    self._in_nested_string = False
            elif char == '"':
                self._in_nested_string = True
            elif char in "[{":
                self._depth += 1
            elif char in "]}":
                self._depth -= 1
                if self._depth == 0:
                    self._raw.append(text[start:i])
                    self._finish_raw(events)
                    return i
        self._raw.append(text[start:i])
        return i

    def _feed_scalar(self, text: str, i: int, events: list[JsonEvent]) -> int:
        match = _SCALAR_END.search(text, i)
        end = match.start() if match else len(text)
        self._raw.append(text[i:end])
        if match is not None:
            self._finish_raw(events)
        return end

    def _finish_raw(self, events: list[JsonEvent]) -> None:
        raw = "".join(self._raw)
        self._raw = []
        try:
            value = json.loads(raw, strict=False)
        except json.JSONDecodeError as exc:
            raise JsonStreamError(f"member {self._key!r} is not valid JSON: {exc}") from None
        events.append(MemberDone(self._key, value))
        self._state = _State.AFTER_VALUE
