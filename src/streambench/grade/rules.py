"""Ordering and content rules over one run. Each rule is a slug, a one-line description
(docs/rules.md has the long form) and a pure check over a :class:`RunContext`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streambench.answer import MEMBER_KEYS, STRUCTURED_MODES
from streambench.grade.client import ClientState
from streambench.grade.dialects import UIEvent
from streambench.grade.metrics import paints, still_spans

_ESCAPE = re.compile(r'\\(?:u[0-9a-fA-F]{1,4}|["\\/bfnrt])')
_JSON_SYNTAX = re.compile(
    rf'"\s*\}}\s*$|"(?:{"|".join(map(re.escape, MEMBER_KEYS))})"\s*:|\]\s*,\s*"'
)


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    at_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "message": self.message, "at_ms": self.at_ms}


@dataclass
class RunContext:
    """Everything a rule may look at for one run."""

    state: ClientState
    mode: str
    expected_text: str | None = None
    n_upstreams: int = 1  # upstream calls the case offers (the provider chain's length)
    # the first upstream failed before delivering any content (a fault the chain should absorb)
    first_upstream_failed_early: bool = False
    # upstream time the structured part (code_edits / yaml) was complete, on the request clock
    structured_complete_ms: float | None = None
    # the order the request asked for: a text_first request states text before changes on purpose
    requested_order: str = "changes_first"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def reference_text(self) -> str | None:
        """What the user should have read: the case's expected text, else the final message."""
        return self.expected_text if self.expected_text is not None else self.state.final_text

    def char_time(self, index: int) -> float | None:
        """When the client showed the streamed text's character ``index``."""
        seen = 0
        for event in self.state.timeline:
            if event.kind == "text" and event.text:
                seen += len(event.text)
                if index < seen:
                    return event.t_ms
        return None


Check = Callable[[RunContext, dict[str, Any]], list[tuple[str, float | None]]]


@dataclass(frozen=True)
class Rule:
    slug: str
    description: str
    check: Check
    defaults: dict[str, Any] = field(default_factory=dict)
    # off: runs only when a profile names it (a taste, not a bug: e.g. jank)
    on_by_default: bool = True


def _terminal_ms(ctx: RunContext) -> float | None:
    terminal = ctx.state.terminal
    return terminal.t_ms if terminal else None


def _position(timeline: list[UIEvent], event: UIEvent) -> int:
    """Where ``event`` itself sits (by identity: ``list.index`` compares every field)."""
    return next(i for i, ev in enumerate(timeline) if ev is event)


def _after_terminal(ctx: RunContext) -> list[UIEvent]:
    terminal = ctx.state.terminal
    if terminal is None:
        return []
    return ctx.state.timeline[_position(ctx.state.timeline, terminal) + 1 :]


def _first_text(ctx: RunContext) -> UIEvent | None:
    return next((ev for ev in ctx.state.timeline if ev.kind == "text" and ev.text), None)


def _text_before_changes(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    changes = ctx.state.changes
    text = _first_text(ctx)
    if ctx.mode not in STRUCTURED_MODES or ctx.requested_order == "text_first":
        return []
    if not changes or text is None:
        return []
    timeline = ctx.state.timeline
    if _position(timeline, text) < _position(timeline, changes[0]):
        gap = changes[0].t_ms - text.t_ms
        return [(f"text shown {gap:g} ms before the changes arrived", text.t_ms)]
    return []


def _missing_changes(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    if ctx.mode not in STRUCTURED_MODES or ctx.state.changes:
        return []
    end_ms = _terminal_ms(ctx)
    terminal = ctx.state.terminal
    if terminal is not None and terminal.kind == "done" and terminal.code is not None:
        return [("the final message carries code but no changes event came first", end_ms)]
    done_ms = ctx.structured_complete_ms
    if done_ms is not None and (end_ms is None or done_ms <= end_ms):
        return [(f"upstream finished the structured part at {done_ms:g} ms; no changes", end_ms)]
    return []


def _provisional_mismatch(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    terminal = ctx.state.terminal
    if terminal is None or terminal.kind != "done" or terminal.code is None:
        return []
    return [
        (f"changes at {ev.t_ms:g} ms differ from the final message's code", ev.t_ms)
        for ev in ctx.state.changes
        if ev.code != terminal.code
    ]


def _event_after_terminal(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    return [
        (f"{ev.kind} event after the terminal event", ev.t_ms)
        for ev in _after_terminal(ctx)
        # an event the dialect does not understand is counted in unknown_events instead
        if ev.kind not in ("status", "unknown") and not ev.is_terminal
    ]


def _terminal_count(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    terminals = ctx.state.terminals
    if len(terminals) == 1:
        return []
    if not terminals:
        return [("the stream ended without a done or error event", None)]
    kinds = ", ".join(ev.kind for ev in terminals)
    return [(f"{len(terminals)} terminal events ({kinds})", terminals[1].t_ms)]


def _text_mismatch(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    final = ctx.state.final_text
    streamed = ctx.state.streamed_text
    if final is None or streamed == final:
        return []
    at = next(
        (i for i, (a, b) in enumerate(zip(streamed, final, strict=False)) if a != b),
        min(len(streamed), len(final)),
    )
    return [(f"streamed text differs from the final text at char {at}", _terminal_ms(ctx))]


def _count_excess(pattern: re.Pattern[str], ctx: RunContext) -> re.Match[str] | None:
    """The first match in the streamed text beyond what the reference text itself contains."""
    reference = ctx.reference_text
    if reference is None:
        return None
    streamed = ctx.state.streamed_text
    matches = list(pattern.finditer(streamed))
    if len(matches) <= len(pattern.findall(reference)):
        return None
    common = next(
        (i for i, (a, b) in enumerate(zip(streamed, reference, strict=False)) if a != b),
        min(len(streamed), len(reference)),
    )
    return next((m for m in matches if m.end() > common), matches[-1])


def _escape_leak(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    match = _count_excess(_ESCAPE, ctx)
    if match is None:
        return []
    return [
        (
            f"JSON escape `{match.group()}` shown at char {match.start()}",
            ctx.char_time(match.start()),
        )
    ]


def _json_leak(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    match = _count_excess(_JSON_SYNTAX, ctx)
    if match is None:
        return []
    return [
        (
            f"JSON syntax `{match.group()}` shown at char {match.start()}",
            ctx.char_time(match.start()),
        )
    ]


def _duplicate_after_failover(
    ctx: RunContext, params: dict[str, Any]
) -> list[tuple[str, float | None]]:
    reference = ctx.reference_text
    streamed = ctx.state.streamed_text
    if not reference or streamed == reference or reference.startswith(streamed):
        return []
    head = reference[: min(len(reference), int(params["min_overlap_chars"]))]
    restart = streamed.find(head, 1)
    if restart <= 0:
        return []
    return [
        (
            f"the answer restarts at char {restart} after {restart} chars already shown",
            ctx.char_time(restart),
        )
    ]


def _no_fallthrough(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    if (
        ctx.state.terminal_kind != "error"
        or ctx.n_upstreams < 2
        or not ctx.first_upstream_failed_early
    ):
        return []
    return [
        (
            f"failed before any content; {ctx.n_upstreams - 1} more upstream(s) were left",
            _terminal_ms(ctx),
        )
    ]


def _partial_mismatch(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    terminal = ctx.state.terminal
    if terminal is None or terminal.kind != "error" or terminal.text is None:
        return []
    if terminal.text == ctx.state.streamed_text:
        return []
    shown, told = len(ctx.state.streamed_text), len(terminal.text)
    return [(f"error.partial_content has {told} chars; the user saw {shown}", terminal.t_ms)]


def _double_apply(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    applied = [a for a in ctx.state.applied if a.source == "changes"]
    return [(f"changes applied again ({i + 2}. time)", a.t_ms) for i, a in enumerate(applied[1:])]


def _status_after_terminal(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    return [
        (f"status {ev.text!r} after the terminal event", ev.t_ms)
        for ev in _after_terminal(ctx)
        if ev.kind == "status"
    ]


def _jank(ctx: RunContext, params: dict[str, Any]) -> list[tuple[str, float | None]]:
    shown = paints(ctx.state)
    total = sum(len(p.text) for p in shown)
    max_jump, max_stall = int(params["max_jump_chars"]), float(params["max_stall_ms"])
    found: list[tuple[str, float | None]] = [
        (
            f"{len(p.text)} chars painted at once ({len(p.text) / total:.0%} of the answer; "
            f"max_jump_chars {max_jump})",
            p.t_ms,
        )
        for p in shown
        if len(p.text) > max_jump
    ]
    found += [
        (f"text stood still for {b - a:g} ms (max_stall_ms {max_stall:g})", a)
        for a, b in still_spans(ctx.state)
        if b - a > max_stall
    ]
    return sorted(found, key=lambda item: item[1] or 0.0)


RULES: dict[str, Rule] = {
    rule.slug: rule
    for rule in (
        Rule(
            "text-before-changes",
            "Text was shown before the changes event arrived.",
            _text_before_changes,
        ),
        Rule(
            "missing-changes",
            "Code/YAML was produced but no changes event reached the client.",
            _missing_changes,
        ),
        Rule(
            "provisional-mismatch",
            "A changes event's code differs from the final code (a flash of wrong code).",
            _provisional_mismatch,
        ),
        Rule(
            "event-after-terminal",
            "A changes, text or other event arrived after done/error.",
            _event_after_terminal,
        ),
        Rule(
            "terminal-count",
            "The stream did not end with exactly one done or error event.",
            _terminal_count,
        ),
        Rule(
            "text-mismatch",
            "The streamed text differs from the final message's text.",
            _text_mismatch,
        ),
        Rule(
            "escape-leak", 'A raw JSON escape (\\n, \\", \\uXXXX) was shown as text.', _escape_leak
        ),
        Rule(
            "json-leak",
            "JSON syntax of the model's answer (keys, closing quote and brace) was shown as text.",
            _json_leak,
        ),
        Rule(
            "duplicate-after-failover",
            "Shown text is followed by an answer restarting from its beginning.",
            _duplicate_after_failover,
            {"min_overlap_chars": 8},
        ),
        Rule(
            "no-fallthrough",
            "A failure before any content ended in error although another upstream was available.",
            _no_fallthrough,
        ),
        Rule(
            "partial-mismatch",
            "error.partial_content differs from the text the user saw.",
            _partial_mismatch,
        ),
        Rule("double-apply", "The client applied changes more than once.", _double_apply),
        Rule(
            "status-after-terminal",
            "A status event arrived after done/error.",
            _status_after_terminal,
        ),
        Rule(
            "jank",
            "Text arrived in jumps or stalls a reader notices (off unless a profile enables it).",
            _jank,
            {"max_jump_chars": 80, "max_stall_ms": 1500},
            on_by_default=False,
        ),
    )
}


def check_rules(ctx: RunContext, selected: dict[str, dict[str, Any]]) -> list[Violation]:
    """Run the ``selected`` rules (slug -> parameters) in registry order."""
    violations: list[Violation] = []
    for slug, rule in RULES.items():
        if slug in selected:
            params = {**rule.defaults, **selected[slug]}
            violations.extend(Violation(slug, msg, at) for msg, at in rule.check(ctx, params))
    return violations
