"""Outcome, ordering and content rules over one run. Each rule is a slug, a one-line
description (docs/rules.md has the long form) and a pure check over a :class:`RunContext`.

A check returns its findings, or None when the run lacks what the rule needs (no expected
answer, no final message): the row lists those rules as ``not_checked`` instead of passing
them. Cross-run rules (``split-variance``) have no per-run check; grade/variance.py runs them
over a whole matrix."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from streambench.answer import MEMBER_KEYS, STRUCTURED_MODES, prefill_for
from streambench.errors import ConfigError
from streambench.grade.client import ClientState
from streambench.grade.dialects import UIEvent
from streambench.grade.expect import Answer, Outcome, apply_code_edits
from streambench.grade.metrics import paints, still_spans

_ESCAPE = re.compile(r'\\(?:u[0-9a-fA-F]{1,4}|["\\/bfnrt])')
_JSON_SYNTAX = re.compile(
    rf'"\s*\}}\s*$|"(?:{"|".join(map(re.escape, MEMBER_KEYS))})"\s*:|\]\s*,\s*"'
)


class ViolationRecord(TypedDict):
    """A violation as a result row holds it."""

    rule: str
    message: str
    at_ms: float | None


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str
    at_ms: float | None

    def as_dict(self) -> ViolationRecord:
        return {"rule": self.rule, "message": self.message, "at_ms": self.at_ms}


@dataclass(frozen=True)
class Prompt:
    """What one upstream request asked: read by the provider module of its API."""

    user_text: str
    prefill: str
    body_text: str  # every string of the JSON body, one per line (system prompts, tools, ...)


@dataclass(frozen=True)
class UpstreamCall:
    """One upstream request the replay answered: what the SUT sent (``api`` as detected from
    its URL, ``generic-sse`` when unknown) and the recording that answered it."""

    method: str
    url: str
    api: str
    recorded_api: str
    recorded_url: str
    t_ms: float | None = None  # when it began, on the request clock
    plan: int = 0  # which of the case's recordings answered it (0-based)
    cycled: bool = False  # more calls than recordings: the replay answered with one again
    # what it asked (the last user message, the assistant prefill) and every string of its
    # JSON body; None when the body is no JSON object of a known API
    prompt: Prompt | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.url,
            "api": self.api,
            "recorded_api": self.recorded_api,
            "plan": self.plan,
            "t_ms": self.t_ms,
        }


@dataclass(frozen=True)
class ChainStep:
    """One upstream of a provider chain as a chaos cell plays it: the full answer text it would
    deliver and how its fault ends it (``early``: before any content, ``late``: after some)."""

    text: str
    failure: str | None = None  # None (delivers its answer) | "early" | "late"


# Where the SUT's provider client must send for the replay to answer (no-upstream-call).
INTERCEPTION_HINT = (
    "over HTTP point its provider base URL at the replay host (ANTHROPIC_BASE_URL,"
    " OPENAI_BASE_URL=<host>/v1, GOOGLE_GEMINI_BASE_URL; --sut-cmd sets them); in process only"
    " httpx / httpx2 clients are intercepted (the anthropic, openai and google-genai SDKs)"
)


@dataclass
class RunContext:
    """Everything a rule may look at for one run."""

    state: ClientState
    mode: str
    # every outcome a correct system may reach (grade/expect.py); empty: nothing is expected
    expected: tuple[Outcome, ...] = ()
    expected_text: str | None = None  # shorthand for one expected outcome: done with this text
    n_upstreams: int = 1  # upstream calls the case offers (the provider chain's length)
    # the first upstream failed before delivering any content (a fault the chain should absorb)
    first_upstream_failed_early: bool = False
    # upstream time the structured part (code_edits / yaml) was complete, on the request clock
    structured_complete_ms: float | None = None
    # the order the request asked for: a text_first request states text before changes on purpose
    requested_order: str = "changes_first"
    status_code: int = 200  # the SUT's HTTP status
    sut_error: str | None = None  # the in-process SUT raised
    expected_status: int | None = None  # the HTTP status the case states (expect.status)
    # the request accepts no text/event-stream: the answer is one JSON body (grade/json_answer.py)
    json_answer: bool = False
    refused: bool = False  # the case expects the request refused (a status >= 400, no run)
    # what is wrong with the JSON answer or the refusal's body (None: nothing, or not one)
    answer_problem: str | None = None
    # what the thread holds before this turn (a multi-turn case's earlier messages and
    # answers, in order): the turn's upstream request must carry them
    history: tuple[str, ...] = ()
    expression: str = ""  # the request's code (job_code edits apply to it)
    # the first upstream answered 429/529 with this retry-after and another attempt was possible
    retry_after_s: float | None = None
    # (first upstream call began, the served upstream's last byte) on the request clock
    upstream_window_ms: tuple[float, float] | None = None
    # what the replay saw of each upstream request (None: not known for this run)
    upstream_calls: list[UpstreamCall] | None = None
    # the APIs the case's recordings speak: a call to any of them is the SUT's right (a retry
    # to the same provider may be answered by the next recording, the replay's order)
    recorded_apis: frozenset[str] = frozenset()
    # the user's message the case sends (``request.content``; None: not known)
    user_content: str | None = None
    # the provider chain a chaos cell plays, in call order (None: not a chaos cell)
    chain: tuple[ChainStep, ...] | None = None

    @property
    def outcomes(self) -> tuple[Outcome, ...]:
        if self.expected or self.expected_text is None:
            return self.expected
        return (Outcome("done", Answer(self.expected_text), "the expected text"),)

    @property
    def expected_texts(self) -> list[str]:
        """The answer texts a correct system may show (empty: not known)."""
        texts = [o.answer.text for o in self.outcomes if o.answer.text is not None]
        return list(dict.fromkeys(texts))

    @property
    def reference_text(self) -> str | None:
        """What the user should have read: the expected answer, else the final message."""
        texts = self.expected_texts
        return texts[0] if texts else self.state.final_text

    def char_time(self, index: int) -> float | None:
        """When the client showed the streamed text's character ``index``."""
        seen = 0
        for event in self.state.timeline:
            if event.kind == "text" and event.text:
                seen += len(event.text)
                if index < seen:
                    return event.t_ms
        return None


Findings = list[tuple[str, float | None]]
# None: the run lacks what the rule needs (it goes to the row's not_checked)
Check = Callable[[RunContext, dict[str, Any]], Findings | None]


@dataclass(frozen=True)
class Rule:
    slug: str
    description: str
    check: Check | None  # None: a cross-run rule (grade/variance.py)
    defaults: dict[str, Any] = field(default_factory=dict)
    # off: runs only when a profile names it (a taste, not a bug: e.g. jank)
    on_by_default: bool = True


def first_difference(a: str, b: str) -> int:
    """The first index where ``a`` and ``b`` differ (the shorter length when one is a prefix)."""
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def excerpt(text: str, at: int, width: int = 24) -> str:
    """A short quoted piece of ``text`` starting a little before ``at``."""
    start = max(0, at - 8)
    piece = text[start : start + width]
    return ("…" if start else "") + repr(piece) + ("…" if start + width < len(text) else "")


def difference(seen: str, expected: str) -> str:
    """ "at char N: 'seen…' vs expected 'expected…'"."""
    at = first_difference(seen, expected)
    return f"at char {at}: {excerpt(seen, at)} vs expected {excerpt(expected, at)}"


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


def _text_mismatch(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    final = ctx.state.final_text
    streamed = ctx.state.streamed_text
    if final is None:
        # an error's partial is partial-mismatch's; no final text at all cannot be compared
        return [] if ctx.state.terminal_kind == "error" else None
    if streamed == final:
        return []
    at = first_difference(streamed, final)
    return [(f"streamed text differs from the final text at char {at}", _terminal_ms(ctx))]


def _leak(pattern: re.Pattern[str], ctx: RunContext, what: str) -> Findings | None:
    """The first match in the streamed text that no reference text holds at the same position
    (positions, not counts: a legitimate match elsewhere does not excuse a leak)."""
    references = ctx.expected_texts or ([ctx.state.final_text] if ctx.state.final_text else [])
    streamed = ctx.state.streamed_text
    if not references:
        return None if streamed else []
    for match in pattern.finditer(streamed):
        if all(ref[match.start() : match.end()] != match.group() for ref in references):
            at = match.start()
            return [(f"{what} `{match.group()}` shown at char {at}", ctx.char_time(at))]
    return []


def _escape_leak(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    return _leak(_ESCAPE, ctx, "JSON escape")


def _json_leak(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    return _leak(_JSON_SYNTAX, ctx, "JSON syntax")


def _duplicate_after_failover(
    ctx: RunContext, params: dict[str, Any]
) -> list[tuple[str, float | None]]:
    streamed = ctx.state.streamed_text
    if ctx.chain is not None:
        # each upstream answers its own text: what was shown must come from one of them
        if not streamed or any(step.text.startswith(streamed) for step in ctx.chain):
            return []
        at = max(_common_prefix(streamed, step.text) for step in ctx.chain)
        return [(f"shown text mixes upstream answers from char {at}", ctx.char_time(at))]
    reference = ctx.reference_text
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


def _common_prefix(a: str, b: str) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _no_fallthrough(ctx: RunContext, _: dict[str, Any]) -> list[tuple[str, float | None]]:
    if ctx.chain is not None:
        return _chain_contract(ctx, ctx.chain)
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


def _chain_contract(
    ctx: RunContext, chain: tuple[ChainStep, ...]
) -> list[tuple[str, float | None]]:
    """skytwin #151: an upstream failing before content falls through to the next; the first
    one that delivers content is committed (done with its answer, or error when it fails)."""
    terminal, end_ms = ctx.state.terminal_kind, _terminal_ms(ctx)
    committed = next((i for i, step in enumerate(chain) if step.failure != "early"), None)
    if committed is None:
        if terminal == "done" or ctx.state.streamed_text:
            return [
                (
                    f"all {len(chain)} upstream(s) failed before content, yet {terminal}"
                    f" with {len(ctx.state.streamed_text)} chars shown",
                    end_ms,
                )
            ]
        return []
    step = chain[committed]
    # with an expected outcome, done-after-truncation owns this finding (one name for it)
    if step.failure == "late" and terminal == "done" and not ctx.outcomes:
        return [
            (
                f"upstream {committed + 1} failed after its first content, yet the run ended"
                " in done (error swallowed, or retried after text was shown)",
                end_ms,
            )
        ]
    if step.failure is None and terminal != "done":
        return [
            (
                f"upstream {committed + 1} was healthy, yet the run ended in {terminal}"
                + (f" after {committed} early failure(s)" if committed else ""),
                end_ms,
            )
        ]
    if step.failure is None and ctx.state.streamed_text != step.text:
        return [(f"done, but the text shown is not upstream {committed + 1}'s answer", end_ms)]
    return []


def _partial_mismatch(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    terminal = ctx.state.terminal
    if terminal is None or terminal.kind != "error":
        return []
    if terminal.text is None:
        return None  # the dialect's error carries no partial content
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


def _error_detail(ctx: RunContext) -> str:
    terminal = ctx.state.terminal
    if terminal is None:
        return "without a done or error event"
    message = terminal.data.get("message")
    return f"in error ({message})" if message else "in error"


def _wrong_text(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    texts = ctx.expected_texts
    if not texts:
        return None
    state, kind = ctx.state, ctx.state.terminal_kind
    done_texts = [
        o.answer.text for o in ctx.outcomes if o.terminal == "done" and o.answer.text is not None
    ]
    found: Findings = []
    if kind == "done" and done_texts:
        for what, seen in (
            ("streamed text", state.streamed_text),
            ("final text", state.final_text),
        ):
            if seen is not None and seen not in done_texts:
                found.append((f"{what} {difference(seen, done_texts[0])}", _terminal_ms(ctx)))
    elif not any(t.startswith(state.streamed_text) for t in texts):
        at = first_difference(state.streamed_text, texts[0])
        shown = difference(state.streamed_text, texts[0])
        found.append((f"shown text is no prefix of the expected answer {shown}", ctx.char_time(at)))
    return found


def _wrong_code(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    if ctx.mode not in STRUCTURED_MODES:
        return []
    codes = list(dict.fromkeys(o.answer.code for o in ctx.outcomes if o.answer.code is not None))
    if ctx.outcomes and not any(o.delivered for o in ctx.outcomes):
        return [
            ("changes arrived although no upstream delivered any", ev.t_ms)
            for ev in ctx.state.changes
        ]
    if not codes:
        return None
    if ctx.state.terminal_kind == "done" and any(o.terminal == "done" for o in ctx.outcomes):
        final = ctx.state.final_code
        if final is None:
            return [(f"no code arrived; expected {len(codes[0])} chars", _terminal_ms(ctx))]
        if final not in codes:
            return [(f"final code {difference(final, codes[0])}", _terminal_ms(ctx))]
        return []
    return [
        (f"changes code {difference(ev.code, codes[0])}", ev.t_ms)
        for ev in ctx.state.changes
        if ev.code is not None and ev.code not in codes
    ]


def _unexpected_error(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    if not ctx.outcomes:
        return None
    if ctx.state.terminal_kind == "done" or any(o.terminal != "done" for o in ctx.outcomes):
        return []
    cause = ctx.outcomes[0].cause
    return [(f"ended {_error_detail(ctx)} although {cause}", _terminal_ms(ctx))]


def _done_after_truncation(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    if not ctx.outcomes:
        return None
    if ctx.state.terminal_kind != "done" or any(o.terminal == "done" for o in ctx.outcomes):
        return []
    return [(f"answered done although {ctx.outcomes[0].cause}", _terminal_ms(ctx))]


def _sut_failure(ctx: RunContext, _: dict[str, Any]) -> Findings:
    found: Findings = []
    # a status the case states, and a JSON answer's, are wrong-status's
    if ctx.status_code != 200 and ctx.expected_status is None and not ctx.json_answer:
        found.append((f"HTTP status {ctx.status_code}", None))
    if ctx.sut_error:
        found.append((f"the SUT raised {ctx.sut_error}", _terminal_ms(ctx)))
    return found


def _wrong_status(ctx: RunContext, _: dict[str, Any]) -> Findings:
    if ctx.expected_status is not None:
        expected, why = ctx.expected_status, "the case's expect.status"
    elif ctx.json_answer:
        error = ctx.state.terminal_kind == "error"
        expected, why = (502, "a JSON answer's error") if error else (200, "a JSON answer")
    else:
        return []  # an SSE answer's status is sut-failure's (200)
    if ctx.status_code == expected:
        return []
    return [(f"HTTP status {ctx.status_code}; {why} is {expected}", _terminal_ms(ctx))]


def _wrong_json_answer(ctx: RunContext, _: dict[str, Any]) -> Findings:
    if ctx.answer_problem is None:
        return []
    what = "the refused request's answer" if ctx.refused else "the JSON answer"
    return [(f"{what}: {ctx.answer_problem}", _terminal_ms(ctx))]


def _retry_after_ignored(ctx: RunContext, _: dict[str, Any]) -> Findings:
    if ctx.retry_after_s is None:
        return []
    calls = ctx.upstream_calls or []
    if len(calls) > 1 and calls[0].t_ms is not None and calls[1].t_ms is not None:
        gap_ms = calls[1].t_ms - calls[0].t_ms
        if calls[1].url == calls[0].url and gap_ms < ctx.retry_after_s * 1000:
            return [
                (
                    f"called {calls[1].url} again {gap_ms:g} ms after its 429/529 asked for"
                    f" retry-after {ctx.retry_after_s:g} s",
                    calls[1].t_ms,
                )
            ]
    if ctx.state.terminal_kind != "error":
        return []
    if ctx.outcomes and all(o.terminal == "error" for o in ctx.outcomes):
        return []  # the retried attempt fails too (a fault aimed at it): error is right
    return [
        (
            f"ended in error after a 429/529 with retry-after {ctx.retry_after_s:g} s",
            _terminal_ms(ctx),
        )
    ]


def _status_after_text(ctx: RunContext, _: dict[str, Any]) -> Findings:
    text = _first_text(ctx)
    if text is None or ctx.requested_order == "text_first":
        return []
    timeline = ctx.state.timeline
    terminal = ctx.state.terminal
    end = _position(timeline, terminal) if terminal else len(timeline)
    return [
        (f"status {ev.text!r} after text had started", ev.t_ms)
        for ev in timeline[_position(timeline, text) + 1 : end]
        if ev.kind == "status"
    ]


def _latency_mismatch(ctx: RunContext, params: dict[str, Any]) -> Findings | None:
    terminal = ctx.state.terminal
    if terminal is None or terminal.kind != "done":
        return []
    latency = terminal.data.get("latency_ms")
    if not isinstance(latency, int | float) or ctx.upstream_window_ms is None:
        return None
    tolerance = float(params["tolerance_ms"])
    start, end = ctx.upstream_window_ms
    if latency > terminal.t_ms + tolerance:
        return [
            (f"latency_ms {latency:g} exceeds the {terminal.t_ms:g} ms measured", terminal.t_ms)
        ]
    if latency < end - start - tolerance:
        return [
            (
                f"latency_ms {latency:g} is under the {end - start:g} ms the upstream took",
                terminal.t_ms,
            )
        ]
    return []


def _patch_count(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    if ctx.mode != "job_code" or not ctx.state.changes:
        return []
    found: Findings = []
    for ev in ctx.state.changes:
        edits, applied = ev.data.get("code_edits"), ev.data.get("patches_applied")
        resolved = apply_code_edits(ctx.expression, edits)
        if resolved is None or not isinstance(applied, int):
            return None
        code, ok, skipped = resolved
        warnings = ev.data.get("warnings") or []
        n_warnings = len(warnings) if isinstance(warnings, list) else 1
        if applied != ok:
            found.append((f"patches_applied {applied}; {ok} of {len(edits)} edits apply", ev.t_ms))
        if n_warnings != skipped:
            found.append((f"{n_warnings} warning(s) for {skipped} skipped edit(s)", ev.t_ms))
        if ev.code is not None and ev.code != code:
            found.append(
                (f"changes code is not its edits applied: {difference(ev.code, code)}", ev.t_ms)
            )
    return found


def _no_upstream_call(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    if ctx.upstream_calls is None:
        return None
    if ctx.upstream_calls or ctx.n_upstreams < 1:
        return []
    return [
        (
            f"the case has {ctx.n_upstreams} upstream recording(s) but the SUT made no request"
            f" the replay answered: {INTERCEPTION_HINT}",
            _terminal_ms(ctx),
        )
    ]


def _wrong_upstream(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    if ctx.upstream_calls is None:
        return None
    return [
        (
            f"the SUT called {call.method} {call.url} ({call.api}) but the recording answering"
            f" it is {call.recorded_api} ({call.recorded_url})",
            call.t_ms,
        )
        for call in ctx.upstream_calls
        if not call.cycled
        and call.recorded_api != "generic-sse"
        and call.api != call.recorded_api
        and call.api not in ctx.recorded_apis
    ]


def _prompted_calls(ctx: RunContext) -> list[UpstreamCall]:
    """The upstream calls whose request was read (a known API's prompt)."""
    return [c for c in ctx.upstream_calls or () if c.prompt is not None and c.api != "generic-sse"]


def _wrong_prompt(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    calls = _prompted_calls(ctx)
    if ctx.user_content is None or not calls:
        return None
    asked = ctx.user_content.strip()
    code = ctx.expression.strip() if ctx.mode in STRUCTURED_MODES else ""
    prefills = dict.fromkeys(("", prefill_for(ctx.mode, ctx.requested_order)))  # type: ignore[arg-type]
    found: Findings = []
    # a side call (a title, a summary) asks something else: the answer's call must carry both
    first = calls[0]
    assert first.prompt is not None
    where = f"upstream call 1 ({first.api})"
    if asked and not any(asked in c.prompt.body_text for c in calls if c.prompt):
        found.append(
            (
                f"{where}: no request (last user message {excerpt(first.prompt.user_text, 0)})"
                f" carries the user's message {excerpt(asked, 0)}",
                first.t_ms,
            )
        )
    if code and not any(code in c.prompt.body_text for c in calls if c.prompt):
        found.append(
            (
                f"{where}: no request carries the code context (the case's"
                f" {len(code)}-character context.expression, {excerpt(code, 0)})",
                first.t_ms,
            )
        )
    for number, call in enumerate(calls, start=1):
        prompt = call.prompt
        assert prompt is not None
        if prompt.prefill not in prefills:
            wanted = " or ".join(repr(p) for p in prefills if p) or "none"
            found.append(
                (
                    f"upstream call {number} ({call.api}): prefill {excerpt(prompt.prefill, 0)}"
                    f" is not the {ctx.mode} answer's start for order {ctx.requested_order}"
                    f" ({wanted})",
                    call.t_ms,
                )
            )
    return found


def _lost_history(ctx: RunContext, _: dict[str, Any]) -> Findings | None:
    if not ctx.history:
        return []  # a first turn: the thread holds nothing yet
    calls = _prompted_calls(ctx)
    if not calls:
        return None
    lost = [text for text in ctx.history if not any(text in c.prompt.body_text for c in calls)]
    if not lost:
        return []
    return [
        (
            f"upstream call 1 ({calls[0].api}): {len(lost)} of the thread's {len(ctx.history)}"
            f" earlier messages are not in any request, first {excerpt(lost[0], 0)}",
            calls[0].t_ms,
        )
    ]


RULES: dict[str, Rule] = {
    rule.slug: rule
    for rule in (
        Rule(
            "wrong-text",
            "The text the user saw differs from the expected answer.",
            _wrong_text,
        ),
        Rule(
            "wrong-code",
            "The code/YAML the user ends with differs from the expected one, or none arrived.",
            _wrong_code,
        ),
        Rule(
            "unexpected-error",
            "The run ended in error or without a terminal although a complete answer was usable.",
            _unexpected_error,
        ),
        Rule(
            "done-after-truncation",
            "The upstream answer ended early, was unusable or failed; the SUT still answered done.",
            _done_after_truncation,
        ),
        Rule(
            "sut-failure",
            "The SUT answered an HTTP status other than 200, or raised.",
            _sut_failure,
        ),
        Rule(
            "wrong-status",
            "The HTTP status is not the one the case expects (a misuse answer, a JSON answer).",
            _wrong_status,
        ),
        Rule(
            "wrong-json-answer",
            "The JSON answer, or a refused request's error body, is not the documented shape.",
            _wrong_json_answer,
        ),
        Rule(
            "no-upstream-call",
            "The case has upstream recordings but the SUT made no request the replay answered.",
            _no_upstream_call,
        ),
        Rule(
            "wrong-upstream",
            "The SUT called another provider API than the recording's.",
            _wrong_upstream,
        ),
        Rule(
            "wrong-prompt",
            "An upstream request lacks the user's message or code, or prefills another answer.",
            _wrong_prompt,
        ),
        Rule(
            "lost-history",
            "A later turn's upstream request lacks the thread's earlier messages or answers.",
            _lost_history,
        ),
        Rule(
            "split-variance",
            "Under one chunking the run ends differently (text, code, terminal) than under most.",
            None,
        ),
        Rule(
            "status-variance",
            "The statuses shown differ between chunkings of the same seed.",
            None,
        ),
        Rule(
            "retry-after-ignored",
            "An error after a 429/529 with retry-after although another attempt was allowed.",
            _retry_after_ignored,
        ),
        Rule(
            "status-after-text",
            "A status line arrived after the answer text had started.",
            _status_after_text,
        ),
        Rule(
            "latency-mismatch",
            "The final message's latency_ms is not what was measured.",
            _latency_mismatch,
            {"tolerance_ms": 5},
        ),
        Rule(
            "patch-count",
            "The changes event's patches_applied, warnings or code disagree with its code_edits.",
            _patch_count,
        ),
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
            "Shown text is followed by an answer restarting from its beginning (in chaos cells:"
            " shown text mixes two upstreams' answers).",
            _duplicate_after_failover,
            {"min_overlap_chars": 8},
        ),
        Rule(
            "no-fallthrough",
            "A failure before any content ended in error although another upstream was available"
            " (in chaos cells: the run broke the provider chain contract).",
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


# What a refused request is judged by: it has no stream, no answer and no upstream call.
REFUSAL_RULES = frozenset({"wrong-status", "wrong-json-answer", "sut-failure"})
# What a JSON answer cannot show: the order and timing of events, and a stream of its own
# (its text is its final message's, one event of each kind).
STREAM_ONLY_RULES = frozenset(
    {
        "text-mismatch",
        "partial-mismatch",
        "status-after-text",
        "text-before-changes",
        "event-after-terminal",
        "status-after-terminal",
        "terminal-count",
        "double-apply",
        "jank",
    }
)
# Rules judged over a whole matrix (grade/variance.py): one run alone cannot show them.
CROSS_RUN_RULES = frozenset(slug for slug, rule in RULES.items() if rule.check is None)
_SLUG = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def register_rule(
    slug: str, description: str, check: Check, defaults: dict[str, Any] | None = None
) -> Rule:
    """Add a rule of your own to the registry: every run checks it from then on (after the
    built-in rules), and profiles accept its slug. ``check(ctx, params)`` returns
    ``(message, at_ms)`` pairs; ``defaults`` are the parameters a profile may set."""
    if not _SLUG.fullmatch(slug):
        raise ConfigError(f"register_rule: slug {slug!r} must be lowercase words joined by '-'")
    if slug in RULES:
        raise ConfigError(f"register_rule: a rule {slug!r} is already registered")
    if not callable(check):
        raise ConfigError(f"register_rule: {slug!r}: check must be callable(ctx, params)")
    rule = Rule(slug, description, check, dict(defaults or {}))
    RULES[slug] = rule
    return rule


def check_rules(ctx: RunContext, selected: dict[str, dict[str, Any]]) -> list[Violation]:
    """Run the ``selected`` rules (slug -> parameters) in registry order."""
    return judge(ctx, selected)[0]


def judge(
    ctx: RunContext, selected: dict[str, dict[str, Any]]
) -> tuple[list[Violation], list[str]]:
    """The ``selected`` per-run rules' violations, and the slugs that could not be checked."""
    violations: list[Violation] = []
    not_checked: list[str] = []
    for slug, rule in RULES.items():
        if slug in selected and rule.check is not None:
            if (ctx.refused and slug not in REFUSAL_RULES) or (
                ctx.json_answer and slug in STREAM_ONLY_RULES
            ):
                not_checked.append(slug)
                continue
            found = rule.check(ctx, {**rule.defaults, **selected[slug]})
            if found is None:
                not_checked.append(slug)
            elif found:
                violations.extend(Violation(slug, msg, at) for msg, at in found)
    return violations, not_checked
