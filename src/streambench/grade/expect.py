"""The outcome a correct system must reach on a run, derived from the case, its recordings and
the injected faults (docs/rules.md has the table of fault x position -> expected outcome).

The provider chain contract (skytwin #151) decides: upstreams are tried in order; one that
fails before delivering any content falls through to the next (a retry after ``retry-after``
gets the next recording too); the first one that delivers content is committed: it ends in
``done`` with its answer, or, when it fails later, in ``error`` whose partial text is a
prefix of its answer. When every upstream fails before content the run ends in ``error`` with
nothing shown.

The answer of an upstream is decoded here from its recording with the grader's own parsing
(``json.loads`` and the documented code-edit contract), never with the reference's parser,
so a bug there cannot hide behind an expectation computed by the same code.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from streambench.answer import SHAPES, known_prefills
from streambench.grade.upstream import answer_call, tool_calls
from streambench.providers import registry
from streambench.providers.apis import body_tool_calls, summarize_body
from streambench.replay import ReplayPlan, parse_fault
from streambench.replay.content import CONTENT_FAULT_ORIGIN
from streambench.transcript import Transcript

# Faults that end the upstream stream early: what follows them never arrives.
CUTTING_FAULTS = frozenset({"disconnect", "truncate", "error-event"})
# Content faults that keep every value of the answer: the user must see the same text and code.
VALUE_KEEPING_FAULTS = frozenset({"reformat", "escape", "pings", "empty-deltas", "tool", "blocks"})
# Answers decoded once per value (the body, the mode, the prefill...): every run of a case asks
# for its recordings' answers again, and a decoded answer depends on nothing else.
_CACHED_ANSWERS = 1024


@dataclass(frozen=True)
class Answer:
    """What the user should end up with: text, and code/YAML in job_code/workflow (None when it
    is not known: the recording could not be decoded, or chat mode has none)."""

    text: str | None
    code: str | None = None


@dataclass(frozen=True)
class Outcome:
    """One outcome a correct system may reach. ``terminal`` done: exactly ``answer``; error:
    the text shown is a prefix of ``answer.text``. ``cause`` says why, in one line."""

    terminal: str
    answer: Answer
    cause: str
    cut: bool = False  # the committed upstream ended early (truncated, dropped, error event)
    delivered: bool = True  # False: no upstream delivered any content (nothing may be shown)


@dataclass(frozen=True)
class UpstreamFate:
    """How one upstream's replay goes for the chain."""

    fails: bool  # it ends without a complete answer
    shows_content: bool  # it delivered content before failing (the chain is committed)
    cut: bool = False
    tolerable: bool = False  # a malformed or repeated event: a tolerant parser may carry on
    answer_changed: bool = False  # the fault altered the delivered content (a duplicated delta)
    why: str = ""
    unusable: str = ""  # why the complete answer cannot be used (its JSON is cut or broken)


# ---------------------------------------------------------------------------- answers


def recorded_prefill(request_body: Any) -> str | None:
    """The assistant message the recorded request ended with (the prefill), if any."""
    messages = request_body.get("messages") if isinstance(request_body, dict) else None
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if isinstance(last, dict) and last.get("role") == "assistant":
        content = last.get("content")
        return content if isinstance(content, str) else None
    return None


def recorded_mode(request_body: Any) -> tuple[str, str]:
    """(mode, order) a recorded request implies: its prefill names the answer's first key
    (``"code_edits"`` / ``"text_answer"``: job_code; ``"yaml"`` / ``"text"``: workflow)."""
    prefill = recorded_prefill(request_body) or ""
    for mode, shape in SHAPES.items():
        if f'"{shape.structured_key}"' in prefill:
            return mode, "changes_first"
        if f'"{shape.text_key}"' in prefill:
            return mode, "text_first"
    return "chat", "changes_first"


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A wrong prefill guess can parse with a key twice (`{"yaml": "` before a text-first answer).
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object ``text`` holds, also inside a Markdown code fence; None if none parses."""
    start = text.find("{")
    if start < 0:
        return None
    decoder = json.JSONDecoder(strict=False, object_pairs_hook=_unique_keys)
    try:
        obj, _ = decoder.raw_decode(text[start:])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def apply_code_edits(code: str, edits: Any) -> tuple[str, int, int] | None:
    """The documented edit contract (docs/wire-format.md): a ``replace`` whose ``old_code``
    occurs exactly once applies, a ``rewrite`` replaces everything, any other edit is skipped
    with a warning. Returns (code, patches applied, warnings); None when ``edits`` is no list."""
    if not isinstance(edits, list):
        return None
    applied = 0
    for edit in edits:
        new = edit.get("new_code") if isinstance(edit, dict) else None
        action = edit.get("action") if isinstance(edit, dict) else None
        old = edit.get("old_code") if isinstance(edit, dict) else None
        if not isinstance(new, str):
            continue
        if action == "rewrite":
            code = new
        elif action == "replace" and isinstance(old, str) and old and code.count(old) == 1:
            code = code.replace(old, new, 1)
        else:
            continue
        applied += 1
    return code, applied, len(edits) - applied


@functools.lru_cache(maxsize=_CACHED_ANSWERS)
def _structured_object(content: str, mode: str, prefill: str | None) -> dict[str, Any] | None:
    """The JSON object of a job_code / workflow answer continued from a prefill (the recorded
    one, else the known ones); None when no guess parses with the mode's keys. Shared and
    read-only: callers never change the object."""
    shape = SHAPES[mode]
    guesses = [p for p in (prefill, *known_prefills(mode)) if p is not None]
    for guess in dict.fromkeys(guesses):
        obj = _json_object(guess + content)
        if obj is not None and set(shape.keys) <= obj.keys():
            return obj
    return None


def structured_answer(content: str, mode: str, expression: str, prefill: str | None) -> Answer:
    """The text and code/YAML of a job_code / workflow answer continued from a prefill."""
    obj = _structured_object(content, mode, prefill)
    return Answer(None, None) if obj is None else _answer_of(obj, mode, expression)


def _answer_of(obj: dict[str, Any], mode: str, expression: str, text: str | None = None) -> Answer:
    """The answer an object with the mode's structured member holds; its text member, else
    ``text`` (the plain text beside a tool call)."""
    shape = SHAPES[mode]
    text = obj.get(shape.text_key, text)
    structured = obj[shape.structured_key]
    if mode == "workflow":
        code = structured if isinstance(structured, str) else None
    else:
        resolved = apply_code_edits(expression, structured)
        code = resolved[0] if resolved else None
    return Answer(text if isinstance(text, str) else None, code)


def _tool_input(arguments: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(arguments, strict=False)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def tool_answer(
    api: str, body: bytes, text: str, mode: str, expression: str, tool: str | None = None
) -> Answer | None:
    """The answer a tool call of the response ``body`` carries (Anthropic ``tool_use``, OpenAI
    ``tool_calls`` / ``function_call``, google ``functionCall``; streamed or not): the call
    :func:`~streambench.grade.upstream.answer_call` picks, its input read with ``json.loads``;
    its text is the input's text member, else ``text`` (the plain text beside the call). None
    when no call's input holds the mode's structured member (the answer is the text's)."""
    calls = tool_calls([(0.0, piece) for piece in body_tool_calls(api, body)])
    inputs = [_tool_input(call.arguments) or {} for call in calls]
    index = answer_call([(c.name, i) for c, i in zip(calls, inputs, strict=True)], mode, tool)
    if index is None or SHAPES[mode].structured_key not in inputs[index]:
        return None
    return _answer_of(inputs[index], mode, expression, text)


def body_answer(
    transcript: Transcript, body: bytes, mode: str, expression: str, tool: str | None
) -> Answer:
    """The answer a response body of ``transcript``'s API carries for ``mode``: the whole text
    in chat mode; else a tool call's (:func:`tool_answer`), or the text continued from the
    recorded prefill."""
    prefill = recorded_prefill(transcript.request.body)
    return _body_answer(transcript.meta.api, body, mode, expression, tool, prefill)


@functools.lru_cache(maxsize=_CACHED_ANSWERS)
def _body_answer(
    api: str, body: bytes, mode: str, expression: str, tool: str | None, prefill: str | None
) -> Answer:
    text = summarize_body(api, body).text
    if mode not in SHAPES:
        return Answer(text)
    called = tool_answer(api, body, text, mode, expression, tool)
    if called is not None:
        return called
    return structured_answer(text, mode, expression, prefill)


def recorded_answer(
    transcript: Transcript, mode: str, expression: str = "", tool: str | None = None
) -> Answer:
    """The answer the recording carries for ``mode`` (the whole text in chat mode); ``tool``:
    the tool whose call carries the structured part, if the case names one."""
    if transcript.response.status != 200:
        return Answer(None, None)
    return body_answer(transcript, transcript.response.body, mode, expression, tool)


def _content_faults(plan: ReplayPlan | None) -> list[Any]:
    faults = [parse_fault(str(s)) for s in plan.spec.get("faults", ())] if plan else []  # type: ignore[attr-defined]
    return [f for f in faults if f.content]


def planned_answer(
    transcript: Transcript,
    plan: ReplayPlan,
    mode: str,
    expression: str = "",
    tool: str | None = None,
) -> Answer | None:
    """The answer the plan's stream carries when a content fault changed its values
    (``stop``, ``refusal``, ``empty-edits``, ``bad-json``), decoded like a recording's; None
    when no such fault applies (the recording's answer stands)."""
    if all(f.kind in VALUE_KEEPING_FAULTS for f in _content_faults(plan)):
        return None
    return body_answer(transcript, plan.body, mode, expression, tool)


def unusable_answer(transcript: Transcript, plan: ReplayPlan | None, mode: str) -> str:
    """Why the complete answer of an upstream cannot be used: a job_code / workflow answer
    whose structured part does not parse (stopped at max_tokens inside the code, corrupted,
    refused); "" when it can, the mode has no structured part, or it is a tool call's."""
    if mode not in SHAPES:
        return ""
    body = plan.body if plan is not None else transcript.response.body
    summary = summarize_body(transcript.meta.api, body)
    if summary.tool_json:  # the structured part may ride in a tool call: not judged here
        return ""
    if _structured_object(summary.text, mode, recorded_prefill(transcript.request.body)):
        return ""
    faults = [f for f in _content_faults(plan) if f.kind not in VALUE_KEEPING_FAULTS]
    if faults:
        return f"{faults[0].spec} leaves no complete {SHAPES[mode].structured_key}"
    stop = f", stop reason {summary.stop_reason}" if summary.stop_reason else ""
    return f"the recorded answer's {SHAPES[mode].structured_key} is incomplete{stop}"


# ---------------------------------------------------------------------------- fates


def _content_before(plan: ReplayPlan, origin: str) -> bool:
    """Whether content the user sees (not thinking) was delivered before the first frame of
    ``origin`` (or at all)."""
    for entry in plan.timeline:
        if entry.frame.origin == origin:
            return False
        if any(text and kind != "thinking" for kind, text in entry.frame.content):
            return True
    return False


def upstream_fate(
    transcript: Transcript, plan: ReplayPlan | None = None, mode: str = "chat"
) -> UpstreamFate:
    """What the chain gets from this upstream: its recording, with the plan's faults when a
    plan is given (without one: the recording as it is); ``mode`` tells whether a complete
    answer must hold a structured part that parses."""
    faults = [parse_fault(str(s)) for s in plan.spec.get("faults", ())] if plan else []  # type: ignore[attr-defined]
    summary = summarize_body(transcript.meta.api, transcript.response.body)
    # an empty delta (the "" that opens a tool's input) commits no chain: it shows nothing, and
    # thinking is never shown to the user: a chain that saw only thinking may still fall through
    recorded = bool(summary.text or summary.tool_json)
    shown = any(t and k != "thinking" for _, k, t in plan.content_timeline) if plan else recorded
    status = plan.status if plan else transcript.response.status
    if status != 200:
        return UpstreamFate(
            True, False, why=faults[0].spec if faults else f"recorded HTTP {status}"
        )
    cutting = [f for f in faults if f.kind in CUTTING_FAULTS]
    if cutting:
        return UpstreamFate(True, shown, cut=True, why=cutting[0].spec)
    if summary.errors:
        return UpstreamFate(True, shown, cut=True, why=f"recorded error: {summary.errors[0]}")
    if transcript.meta.truncated:
        return UpstreamFate(True, shown, cut=True, why="the recording is truncated")
    garbage = next((f for f in faults if f.kind == "garbage"), None)
    if plan is not None and garbage is not None:
        before = _content_before(plan, "garbage")
        return UpstreamFate(True, before, tolerable=True, why=garbage.spec)
    refused = next((f for f in faults if f.kind == "tool" and f.arg == "duplicate-id"), None)
    if plan is not None and refused is not None and registry.lookup(plan.api).unique_call_ids:
        # a strict client (the API's official SDK) fails at the reused id; a lenient one goes on
        before = _content_before(plan, CONTENT_FAULT_ORIGIN)
        why = f"{refused.spec} (the {plan.api} SDK refuses two tool calls with one id)"
        return UpstreamFate(True, before, tolerable=True, why=why)
    duplicate = next((f for f in faults if f.kind == "duplicate"), None)
    if plan is not None and duplicate is not None:
        repeated = any(e.frame.origin == "duplicate" and e.frame.content for e in plan.timeline)
        return UpstreamFate(False, shown, answer_changed=repeated, why=duplicate.spec)
    return UpstreamFate(False, shown, unusable=unusable_answer(transcript, plan, mode))


# ---------------------------------------------------------------------------- the chain


def _walk(answers: Sequence[Answer], fates: Sequence[UpstreamFate]) -> list[Outcome]:
    """Outcomes over the chain (see the module docstring); a tolerable fault forks the walk."""
    failures: list[str] = []
    for i, (answer, fate) in enumerate(zip(answers, fates, strict=True)):
        where = f"upstream {i + 1}"
        if fate.tolerable:
            strict = [*fates[:i], replace(fate, tolerable=False), *fates[i + 1 :]]
            lenient = [*fates[:i], UpstreamFate(False, True), *fates[i + 1 :]]
            return [*_walk(answers, strict), *_walk(answers, lenient)]
        if not fate.fails and fate.unusable:  # nothing to apply: say so, never half an edit
            return [Outcome("error", answer, f"{where}'s answer is unusable: {fate.unusable}")]
        if not fate.fails:
            if fate.answer_changed:
                answer = Answer(None, None)
            cause = f"{where} answers" + (f" after {'; '.join(failures)}" if failures else "")
            return [Outcome("done", answer, cause)]
        if fate.shows_content:
            return [
                Outcome("error", answer, f"{where} failed after content ({fate.why})", fate.cut)
            ]
        failures.append(f"{where} failed before content ({fate.why})")
    cause = "every upstream failed before content: " + "; ".join(failures)
    return [Outcome("error", Answer(""), cause, delivered=False)]


def served_upstream(fates: Sequence[UpstreamFate]) -> int:
    """The upstream the chain commits to (index), or the last one when all fail first."""
    for i, fate in enumerate(fates):
        if (not fate.fails and not fate.unusable) or fate.shows_content:
            return i
    return len(fates) - 1


def expected_outcomes(
    answers: Sequence[Answer], fates: Sequence[UpstreamFate], stated_terminal: str | None = None
) -> list[Outcome]:
    """Every outcome a correct chain may reach. ``stated_terminal`` (the case's
    ``expect.terminal``, for runs without injected faults) overrides the derived terminal."""
    outcomes = _walk(answers, fates)
    if stated_terminal is None:
        return outcomes
    return [
        replace(o, terminal=stated_terminal, cause=f"{o.cause}; the case expects {stated_terminal}")
        for o in outcomes
    ]
