"""Output dialects: a SUT's SSE events -> normalised UI events the client model understands.

A dialect is data: a YAML file whose ``events`` list says which SSE events (by event name
and/or JSON field values) are status, text, changes, done, error, meta, or to ignore, and
where in the JSON their text / code / message sits (docs/evaluation.md, "Dialects"). The
built-ins are such files in this folder; ``--dialect path/to/file.yaml`` loads another one,
and :func:`register_dialect` adds one (a :class:`Dialect` or any parser function) by name.
An event no rule matches becomes an ``unknown`` UI event: counted, never silently dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streambench._yaml import load_yaml
from streambench.errors import ConfigError, SpecError

TERMINAL_KINDS = frozenset({"done", "error"})
AUTO = "auto"
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class UIEvent:
    """One thing the browser client reacts to, at ``t_ms`` since the request.

    kind: ``status`` (text = the status line), ``changes`` (code = code or YAML),
    ``text`` (text = a streamed delta), ``done`` (text = final content or None when the
    dialect has none, code = final code/YAML), ``error`` (text = partial content),
    ``meta`` (thread/user/anything else the UI ignores), ``unknown`` (an event the dialect
    does not understand; text = its name).
    """

    t_ms: float
    kind: str
    text: str | None = None
    code: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS


DialectParser = Callable[[float, str, str], list[UIEvent]]

# ----------------------------------------------------------------------------- JSON paths

_MISSING = object()


def _lookup(value: Any, path: str) -> list[Any]:
    """Every value at a dotted path: ``a.b``, ``choices.0.delta``, ``choices.*.delta``."""
    if isinstance(value, dict) and "." not in path and path != "*":  # most paths: one key
        found_one = value.get(path)
        return [] if found_one is None else [found_one]
    found = [value]
    for step in path.split("."):
        following: list[Any] = []
        for item in found:
            if step == "*":
                if isinstance(item, list):
                    following.extend(item)
                elif isinstance(item, dict):
                    following.extend(item.values())
            elif isinstance(item, dict) and step in item:
                following.append(item[step])
            elif isinstance(item, list) and step.lstrip("-").isdigit():
                index = int(step)
                if -len(item) <= index < len(item):
                    following.append(item[index])
        found = following
    return [v for v in found if v is not None]


def _first(body: Any, paths: Sequence[str]) -> Any:
    """The first value any of ``paths`` finds (alternatives, in order); _MISSING if none."""
    for path in paths:
        values = _lookup(body, path)
        if values:
            return values[0]
    return _MISSING


def _joined(body: Any, paths: Sequence[str]) -> str:
    """The strings the first finding path gives, joined (``choices.*`` may give several)."""
    for path in paths:
        values = [v for v in _lookup(body, path) if isinstance(v, str)]
        if values:
            return "".join(values)
    return ""


def _as_text(value: Any) -> str | None:
    if value is _MISSING:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# ------------------------------------------------------------------------------- the rules

KINDS = ("status", "text", "changes", "done", "error", "meta", "ignore")
# Which value fields each kind reads (each a JSON path or a list of alternative paths).
_FIELDS = {
    "status": {"text"},
    "text": {"text"},
    "changes": {"code"},
    "done": {"text", "code"},
    "error": {"message", "partial"},
    "meta": set(),
    "ignore": set(),
}
_MATCH_KEYS = {"event", "raw", "has"}  # any other key in ``when`` is a JSON path to compare


@dataclass(frozen=True)
class EventRule:
    """One entry of a dialect's ``events``: which SSE events it matches, what they become."""

    kind: str
    events: frozenset[str] | None = None  # SSE event names (None: any)
    raw: frozenset[str] | None = None  # exact data strings
    has: tuple[str, ...] = ()  # JSON paths that must hold a value
    equals: tuple[tuple[str, frozenset[Any]], ...] = ()  # JSON path -> allowed values
    paths: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def matches(self, event: str, data: str, body: Any) -> bool:
        if self.events is not None and event not in self.events:
            return False
        if self.raw is not None and data.strip() not in self.raw:
            return False
        if self.has and any(not _lookup(body, path) for path in self.has):
            return False
        return not self.equals or all(
            any(_hashable(v) in allowed for v in _lookup(body, path))
            for path, allowed in self.equals
        )

    def emit(self, t_ms: float, event: str, body: Any) -> list[UIEvent]:
        data = body if isinstance(body, dict) else {}
        paths = self.paths
        if self.kind in ("status", "text"):
            text = _joined(body, paths.get("text", ()))
            return [UIEvent(t_ms, self.kind, text, None, data)] if text else []
        if self.kind == "changes":
            return [UIEvent(t_ms, "changes", code=_as_text(_first(body, paths["code"])), data=data)]
        if self.kind == "done":
            text = _as_text(_first(body, paths.get("text", ())))
            code = _as_text(_first(body, paths.get("code", ())))
            return [UIEvent(t_ms, "done", text=text, code=code, data=data)]
        if self.kind == "error":
            message = _as_text(_first(body, paths.get("message", ()))) or ""
            partial = _as_text(_first(body, paths["partial"])) or "" if "partial" in paths else None
            return [UIEvent(t_ms, "error", text=partial, data={**data, "message": message})]
        if self.kind == "meta":
            return [UIEvent(t_ms, "meta", text=event, data=data)]
        return []


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) else json.dumps(value)


# Event names whose candidate rules a dialect remembers (a SUT could send endless new names).
_REMEMBERED_EVENT_NAMES = 256


@dataclass(frozen=True)
class Dialect:
    """A dialect as data: every rule whose ``when`` matches an event emits its UI event, in
    the file's order; an event no rule matches is ``unknown``."""

    name: str
    rules: tuple[EventRule, ...]
    description: str = ""
    # event name -> the rules that may match it (any name, or this one), in the file's order
    _by_event: dict[str, tuple[EventRule, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _candidates(self, event: str) -> tuple[EventRule, ...]:
        rules = self._by_event.get(event)
        if rules is None:
            rules = tuple(r for r in self.rules if r.events is None or event in r.events)
            if len(self._by_event) < _REMEMBERED_EVENT_NAMES:
                self._by_event[event] = rules
        return rules

    def __call__(self, t_ms: float, event: str, data: str) -> list[UIEvent]:
        try:
            body: Any = json.loads(data)
        except ValueError:
            body = None
        matched = False
        out: list[UIEvent] = []
        for rule in self._candidates(event):
            if rule.matches(event, data, body):
                matched = True
                out += rule.emit(t_ms, event, body)
        if not matched:
            name = body.get("type") if isinstance(body, dict) and event == "message" else None
            return [UIEvent(t_ms, "unknown", text=str(name or event), data={"data": data[:200]})]
        return out


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise ConfigError(f"{where}: must be a non-empty string or a list of them")
    return tuple(items)


def _values(value: Any) -> frozenset[Any]:
    return frozenset(_hashable(v) for v in (value if isinstance(value, list) else [value]))


def _rule(raw: Any, where: str) -> EventRule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping with when and kind")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {', '.join(KINDS)}")
    extra = set(raw) - {"when", "kind"} - _FIELDS[kind]
    if extra:
        allowed = ", ".join(sorted(_FIELDS[kind])) or "nothing else"
        raise ConfigError(f"{where}.{sorted(extra)[0]}: a {kind} event reads {allowed}")
    if kind == "changes" and "code" not in raw:
        raise ConfigError(f"{where}.code: a changes event needs the path of its code")
    when = raw.get("when")
    if not isinstance(when, dict) or not when:
        raise ConfigError(f"{where}.when: must be a mapping (event, raw, has, or JSON paths)")
    equals = tuple(
        (str(key), _values(value)) for key, value in when.items() if key not in _MATCH_KEYS
    )
    if any(not key for key, _ in equals):
        raise ConfigError(f"{where}.when: a JSON path must not be empty")
    return EventRule(
        kind=kind,
        events=frozenset(_strings(when["event"], f"{where}.when.event"))
        if "event" in when
        else None,
        raw=frozenset(_strings(when["raw"], f"{where}.when.raw")) if "raw" in when else None,
        has=_strings(when["has"], f"{where}.when.has") if "has" in when else (),
        equals=equals,
        paths={key: _strings(raw[key], f"{where}.{key}") for key in _FIELDS[kind] if key in raw},
    )


def parse_dialect(data: Any, source: str) -> Dialect:
    """A :class:`Dialect` from a parsed YAML document; ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a dialect is a mapping with name and events")
    unknown = set(data) - {"name", "description", "events"}
    if unknown:
        raise ConfigError(
            f"{source}: {sorted(unknown)[0]}: unknown key (name, description, events)"
        )
    name = data.get("name", Path(source).stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: name: must be a non-empty string")
    events = data.get("events")
    if not isinstance(events, list) or not events:
        raise ConfigError(f"{source}: events: must be a non-empty list of rules")
    rules = tuple(_rule(item, f"{source}: events[{i}]") for i, item in enumerate(events))
    return Dialect(name, rules, str(data.get("description") or ""))


def load_dialect(path: str | Path) -> Dialect:
    """A dialect file; a bad one raises one ConfigError line naming the file and field."""
    return parse_dialect(load_yaml(path, "dialect"), str(path))


# -------------------------------------------------------------------------------- registry

BUILTIN_DIALECTS = (
    "streambench",
    "apollo",
    "anthropic",
    "openai-chat",
    "openai-responses",
    "vercel-ai",
)
_REGISTRY: dict[str, DialectParser] = {}


def register_dialect(name: str, parser: Dialect | DialectParser) -> None:
    """Make ``--dialect NAME`` (and ``auto``) use ``parser``: a :class:`Dialect`, or a function
    ``(t_ms, event_name, data) -> list[UIEvent]``."""
    _REGISTRY[name] = parser


def dialect_names() -> list[str]:
    """Every dialect by name: the built-ins first, then registered ones."""
    return [*BUILTIN_DIALECTS, *(n for n in _REGISTRY if n not in BUILTIN_DIALECTS)]


def _is_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or "/" in name


def dialect_parser(name: str) -> DialectParser:
    """The parser for a dialect name or a dialect file path."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in BUILTIN_DIALECTS:
        _REGISTRY[name] = load_dialect(_HERE / f"{name}.yaml")
        return _REGISTRY[name]
    if _is_path(name):
        return load_dialect(name)
    if name == AUTO:
        raise SpecError("dialect 'auto' picks one per stream: use parse_stream")
    known = ", ".join([*dialect_names(), AUTO])
    raise SpecError(f"dialect {name!r}: unknown (known: {known}, or a dialect .yaml file)")


def check_dialect(name: str) -> None:
    """Raise the one-line error a bad dialect name or file gives, before any run starts."""
    if name != AUTO:
        dialect_parser(name)


# ``auto`` reads a long stream's first events and its last ones (where terminals are)
AUTO_HEAD_EVENTS = 200
AUTO_TAIL_EVENTS = 20


def pick_dialect(events: Sequence[tuple[str, str]]) -> str:
    """For ``--dialect auto``: the dialect that understands the stream best (fewest unknown
    events, then exactly one terminal), the earlier in :func:`dialect_names` on a tie."""
    sample = list(events)
    if len(sample) > AUTO_HEAD_EVENTS + AUTO_TAIL_EVENTS:
        sample = sample[:AUTO_HEAD_EVENTS] + sample[-AUTO_TAIL_EVENTS:]

    def score(name: str) -> tuple[int, int]:
        parse = dialect_parser(name)
        parsed = [ev for event, data in sample for ev in parse(0.0, event, data)]
        unknown = sum(ev.kind == "unknown" for ev in parsed)
        terminals = sum(ev.is_terminal for ev in parsed)
        return unknown, abs(terminals - 1)

    names = dialect_names()
    return min(names, key=lambda n: (*score(n), names.index(n)))


def parse_stream(name: str, events: Iterable[tuple[float, str, str]]) -> tuple[str, list[UIEvent]]:
    """UI events of a whole stream ``(t_ms, event_name, data)``, and the dialect used (the one
    ``auto`` picked, else ``name``)."""
    items = list(events)
    used = pick_dialect([(e, d) for _, e, d in items]) if name == AUTO else name
    parse = dialect_parser(used)
    return used, [ui for t_ms, event, data in items for ui in parse(t_ms, event, data)]


def unknown_events(events: Iterable[UIEvent]) -> dict[str, int]:
    """How many events of each name the dialect did not understand."""
    return dict(Counter(ev.text or "" for ev in events if ev.kind == "unknown"))
