"""A matrix of runs: cases x SUTs x dialects x chunkings x latencies x faults x seeds, plus
extra cells (a union of cross products: :class:`ExtraCells`).

``run_one`` is one run end to end: case -> replay plans -> SUT -> SSE -> dialect -> client
model -> metrics, rules, quality -> one result row. ``run_matrix`` maps it over an executor.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streambench._yaml import load_yaml
from streambench.errors import ConfigError, SpecError
from streambench.grade.client import consume
from streambench.grade.dialects import UIEvent, check_dialect, parse_stream, unknown_events
from streambench.grade.expect import (
    Answer,
    Outcome,
    expected_outcomes,
    planned_answer,
    recorded_answer,
    served_upstream,
    upstream_fate,
)
from streambench.grade.json_answer import refusal_problem, run_answer_events
from streambench.grade.metrics import compute_metrics
from streambench.grade.profile import load_profile
from streambench.grade.quality import code_quality
from streambench.grade.rules import ChainStep, Prompt, RunContext, UpstreamCall, judge
from streambench.grade.upstream import analyse_plan, served_call
from streambench.grade.variance import cross_run_violations
from streambench.providers import registry
from streambench.providers.apis import detect
from streambench.replay import ReplayPlan, build_plan, parse_chunking, parse_fault, parse_latency
from streambench.replay.specs import split_composed
from streambench.runner.cache import cached_case, cached_inputs
from streambench.runner.cases import Case, case_files
from streambench.runner.executors import Executor, LocalExecutor, Progress
from streambench.runner.row import ID_COLUMNS, Row, RunId
from streambench.sse import SSEDecoder
from streambench.suts import (
    ReplayHost,
    SutResponse,
    SutTimeouts,
    Turn,
    parse_sut,
    replay_host,
    sut_process,
)
from streambench.transcript import Transcript

if TYPE_CHECKING:
    import pandas as pd

# The bundled cases, looked up in the current folder (a checkout of streambench), and where
# reports go when no other folder is named.
DEFAULT_CASES = "fixtures"
DEFAULT_OUT = "reports"
# The replay's own default: recorded chunk times when the transcript has them, else tokens.
DEFAULT_LATENCY = "default"
DEFAULT_CHUNKINGS = (
    "events",
    "bytes:16",
    "utf8",
    "random:min=1,max=64",
    "deltas:1",
    "deltas:adversarial",
)
# The default matrix's mid-stream fault: a cut after the 20th text character of the upstream
# that serves the case (cases without one, such as an empty answer, are left out).
MID_STREAM_FAULT = "disconnect@text=20,call=served,else=skip"
# The axes of a matrix, in RunSpec's order.
AXES = ("cases", "suts", "dialects", "chunkings", "latencies", "faults", "seeds")


@dataclass(frozen=True)
class RunSpec:
    """One run; frozen and picklable so any executor can ship it."""

    case_path: str
    sut: str = "reference"
    dialect: str = "streambench"
    chunking: str = "events"
    latency: str = DEFAULT_LATENCY
    faults: tuple[str, ...] = ()
    seed: int = 0
    profile_path: str | None = None
    timeouts: SutTimeouts = field(default_factory=SutTimeouts)
    # chaos cells: the faults of each upstream call in order (replaces ``faults``), and the
    # chain contract they imply (grade/rules.py ChainStep)
    chain_faults: tuple[tuple[str, ...], ...] = ()
    chain: tuple[ChainStep, ...] | None = None

    def upstream_faults(self, index: int, served: int = 0) -> tuple[str, ...]:
        """The faults of upstream call ``index``: each of ``faults`` hits the upstream its
        ``call=`` names (default the first; ``call=served``: upstream ``served``)."""
        if self.chain_faults:
            return self.chain_faults[index] if index < len(self.chain_faults) else ()
        return tuple(f for f in self.faults if aimed_at(f, served) == index)


def aimed_at(fault: str, served: int) -> int:
    """The upstream (0-based) a fault spec hits; ``served`` is the case's serving upstream."""
    call = parse_fault(fault).aim.call
    return served if call == 0 else call - 1


def plans_of(spec: RunSpec, transcripts: Sequence[Transcript]) -> list[ReplayPlan]:
    """The replay plan of each upstream of a run, with the faults aimed at it."""
    latency = None if spec.latency == DEFAULT_LATENCY else spec.latency
    served = served_upstream([upstream_fate(t) for t in transcripts])
    return [
        build_plan(t, spec.chunking, latency, spec.upstream_faults(i, served), spec.seed)
        for i, t in enumerate(transcripts)
    ]


def unfit(spec: RunSpec) -> str | None:
    """Why a run is left out (a fault placed with ``else=skip`` whose position does not exist
    on its upstream), or None to run it."""
    if not any(parse_fault(f).aim.skip_unfit for f in spec.faults):
        return None
    transcripts = cached_inputs(cached_case(spec.case_path).upstream)
    if not all(aimed_at(f, 0) < len(transcripts) for f in spec.faults):
        return f"{';'.join(spec.faults)}: the case has {len(transcripts)} upstream(s)"
    try:
        plans_of(spec, transcripts)
    except SpecError as exc:
        return str(exc)
    return None


class DefaultAxis(list):  # type: ignore[type-arg]
    """An axis value a :class:`Matrix` was not given (its default). Any other list is a pinned
    axis, even one equal to the default: ``Matrix(seeds=[0])`` pins the seed."""


@dataclass(frozen=True)
class ExtraCells:
    """Runs added to a matrix beside its cross product: the cross product of the axes named
    here, each axis left None taken from the main matrix. ``ExtraCells(seeds=[1],
    chunkings=["events"])`` adds seed 1 under ``events`` for every case, SUT, dialect,
    latency and fault of the matrix; a run already in the matrix is not run twice."""

    cases: Sequence[str] | None = None
    suts: Sequence[str] | None = None
    dialects: Sequence[str] | None = None
    chunkings: Sequence[str] | None = None
    latencies: Sequence[str] | None = None
    faults: Sequence[tuple[str, ...]] | None = None
    seeds: Sequence[int] | None = None

    def named(self) -> frozenset[str]:
        """The axes these cells set (the others inherit)."""
        return frozenset(axis for axis in AXES if getattr(self, axis) is not None)


# The default matrix's extra cells: a second seed where a default chunking draws from it (the
# others split the same way under every seed), and the mid-stream fault under two chunkings.
DEFAULT_EXTRA_CELLS = (
    ExtraCells(chunkings=["random:min=1,max=64"], seeds=[1]),
    ExtraCells(chunkings=["events", "deltas:1"], faults=[(MID_STREAM_FAULT,)]),
)


@dataclass
class Matrix:
    """The axes of a matrix of runs; every run is one combination (see :meth:`specs`) of the
    axes, or of an entry of ``also``. The defaults are ``streambench run``'s: the cases in
    ``fixtures/`` under six chunkings, seed 0, no fault, plus :data:`DEFAULT_EXTRA_CELLS`.

    ``also`` None takes the default extra cells except those setting an axis this matrix was
    given (a pinned axis holds on every run: ``Matrix(seeds=[3])`` has no seed-1 cell, and
    ``chunkings=[...]`` drops both); a list (``[]``: none) is taken as it is."""

    cases: list[str] = field(default_factory=lambda: DefaultAxis([DEFAULT_CASES]))
    suts: list[str] = field(default_factory=lambda: DefaultAxis(["reference"]))
    dialects: list[str] = field(default_factory=lambda: DefaultAxis(["streambench"]))
    chunkings: list[str] = field(default_factory=lambda: DefaultAxis(DEFAULT_CHUNKINGS))
    latencies: list[str] = field(default_factory=lambda: DefaultAxis([DEFAULT_LATENCY]))
    faults: list[tuple[str, ...]] = field(default_factory=lambda: DefaultAxis([()]))
    seeds: list[int] = field(default_factory=lambda: DefaultAxis([0]))
    also: list[ExtraCells] | None = None
    profile: str | None = None
    sut_cmd: str | None = None
    replay_port: int = 0
    timeouts: SutTimeouts = field(default_factory=SutTimeouts)
    # runs :meth:`specs` left out, with why (a fault placed ``else=skip`` that cannot apply)
    skipped: list[tuple[RunSpec, str]] = field(default_factory=list, init=False, repr=False)

    def pinned(self) -> frozenset[str]:
        """The axes this matrix was given (not left at their defaults)."""
        return frozenset(a for a in AXES if not isinstance(getattr(self, a), DefaultAxis))

    def extra_cells(self) -> list[ExtraCells]:
        """The extra cells this matrix runs (``also``, or the defaults left by its pins)."""
        if self.also is not None:
            return list(self.also)
        return [cells for cells in DEFAULT_EXTRA_CELLS if not cells.named() & self.pinned()]

    def products(self) -> list[dict[str, Sequence[Any]]]:
        """Each cross product of the matrix (the main one, then each extra cells') by axis."""
        main = {axis: getattr(self, axis) for axis in AXES}
        extra = [
            {axis: v if (v := getattr(cells, axis)) is not None else main[axis] for axis in AXES}
            for cells in self.extra_cells()
        ]
        return [main, *extra]

    def specs(self) -> list[RunSpec]:
        specs: dict[RunSpec, None] = {}
        for product in self.products():
            case_paths = [str(p) for p in case_files(product["cases"])]
            axes = itertools.product(case_paths, *(product[axis] for axis in AXES[1:]))
            for axis in axes:
                spec = RunSpec(*axis, profile_path=self.profile, timeouts=self.timeouts)
                specs.setdefault(spec)
        self.skipped = [(s, why) for s in specs if (why := unfit(s)) is not None]
        left_out = {s for s, _ in self.skipped}
        return [s for s in specs if s not in left_out]

    def validate(self) -> list[RunSpec]:
        """The runs, after loading every case, upstream transcript and the profile once and
        checking every spec: a broken input fails before the first run, not after the rest."""
        specs = self.specs()
        if not specs:
            raise ConfigError("the matrix has no runs (an axis is empty)")
        products = self.products()
        for axis, check in SPEC_CHECKS.items():
            for value in dict.fromkeys(v for product in products for v in product[axis]):
                check(value)
        for case_path in dict.fromkeys(s.case_path for s in specs):
            cached_inputs(cached_case(case_path).upstream)  # parsed once: the runs reuse it
        load_profile(self.profile)
        return specs


def parse_faults(value: str | Sequence[str]) -> tuple[str, ...]:
    """One fault-axis entry: ``"a;b"`` or ``[a, b]`` combine; ``""``/``none`` is no fault."""
    items = split_composed(value) if isinstance(value, str) else list(value)
    return tuple(f.strip() for f in items if f.strip() and f.strip() != "none")


MATRIX_KEYS = {
    "case": "cases",
    "sut": "suts",
    "dialect": "dialects",
    "chunking": "chunkings",
    "latency": "latencies",
    "fault": "faults",
    "seed": "seeds",
}


def load_matrix(path: str | Path) -> dict[str, Any]:
    """A matrix YAML's axes (keys as on the command line, singular or plural, scalar or list)
    plus ``profile``, ``sut_cmd``, ``out`` and ``also`` (a list of extra cells, each a mapping
    of axes; ``also: []``: none); paths (cases, profile, out) resolve against the file's
    folder."""
    path = Path(path)
    data = load_yaml(path, "matrix")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a matrix is a mapping of axes (case, sut, chunking, ...)")
    settings = {key: data.pop(key) for key in ("profile", "sut_cmd", "out", "also") if key in data}
    axes = _load_axes(data, path, "")
    for key in ("profile", "sut_cmd", "out"):
        if key in settings:
            value = settings[key]
            axes[key] = None if value is None else str(value)
    for key in ("profile", "out"):
        if axes.get(key):
            axes[key] = str(path.parent / axes[key])
    if "also" in settings:
        axes["also"] = _load_extra_cells(settings["also"], path)
    return axes


def _load_extra_cells(value: Any, path: Path) -> list[ExtraCells]:
    """A matrix file's ``also:``: a list of mappings of axes."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: also: a list of extra cells (mappings of axes), got {value!r}")
    cells = []
    for index, entry in enumerate(value):
        where = f"also[{index}]"
        if not isinstance(entry, dict) or not entry:
            raise ConfigError(f"{path}: {where}: a mapping of axes (seed, chunking, ...)")
        cells.append(ExtraCells(**_load_axes(entry, path, where)))
    return cells


def _load_axes(data: dict[Any, Any], path: Path, where: str) -> dict[str, Any]:
    """The axes of one mapping of a matrix file (``where``: its place, for messages), checked."""
    prefix = f"{path}: {where}: " if where else f"{path}: "
    plural = {v: v for v in MATRIX_KEYS.values()}
    known = {**MATRIX_KEYS, **plural}
    axes: dict[str, Any] = {}
    written: dict[str, str] = {}  # axis -> the key as the file spells it, for messages
    for key, value in data.items():
        if key not in known:
            extra = "" if where else ", profile, sut_cmd, out, also"
            raise ConfigError(
                f"{prefix}unknown key {key!r} (known: {', '.join(MATRIX_KEYS)}{extra})"
            )
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConfigError(f"{prefix}{key}: an empty list gives no runs")
        axes[known[key]] = values
        written[known[key]] = key
    if "cases" in axes:
        axes["cases"] = [str(path.parent / str(c)) for c in axes["cases"]]
    if "faults" in axes:
        axes["faults"] = [
            parse_faults(f if isinstance(f, str | list) else str(f)) for f in axes["faults"]
        ]
    if "seeds" in axes:
        for seed in axes["seeds"]:
            if isinstance(seed, bool) or not isinstance(seed, int):
                raise ConfigError(f"{prefix}{written['seeds']}: must be integers, got {seed!r}")
    for axis in ("suts", "dialects", "chunkings", "latencies"):
        if axis in axes:
            axes[axis] = [str(v) for v in axes[axis]]
    # Specs are checked now, so a typo names the file and the key before any run starts.
    for axis, check in SPEC_CHECKS.items():
        try:
            for value in axes.get(axis, ()):
                check(value)
        except SpecError as exc:
            raise SpecError(f"{prefix}{written[axis]}: {exc}") from None
    return axes


def build_matrix(
    path: str | Path | None = None, *, out: str | None = None, **overrides: Any
) -> tuple[Matrix, str]:
    """The matrix of a matrix file (or of the defaults), with ``overrides`` (Matrix fields,
    e.g. ``cases=[...]``; None or empty leaves the file's value) on top, and its report folder
    (``out``, else the file's ``out``, else ``reports``). An axis in ``overrides`` is pinned:
    the file's extra cells (``also``) and the default ones that set it are dropped."""
    axes: dict[str, Any] = load_matrix(path) if path is not None else {}
    if out:
        axes["out"] = out
    pinned: set[str] = set()
    for key, value in overrides.items():
        if key not in MATRIX_FIELDS:
            raise ConfigError(f"matrix: unknown axis {key!r} (known: {', '.join(MATRIX_FIELDS)})")
        if value or (key == "also" and value is not None):
            axes[key] = value
            pinned.add(key)
    if axes.get("also") and "also" not in pinned:
        # an axis given here holds on every run: the file's cells that set it are dropped
        axes["also"] = [cells for cells in axes["also"] if not cells.named() & pinned]
    out = axes.pop("out", None) or DEFAULT_OUT
    cases = axes.get("cases") or DefaultAxis([DEFAULT_CASES])
    if cases == [DEFAULT_CASES] and not Path(DEFAULT_CASES).is_dir():
        raise ConfigError(
            f"no cases given and no {DEFAULT_CASES}/ folder here: run from the streambench "
            "checkout or name the case files or folders"
        )
    return Matrix(**{**axes, "cases": cases}), out


def _check_latency(spec: str) -> None:
    if spec != DEFAULT_LATENCY:
        parse_latency(spec)


MATRIX_FIELDS = tuple(f.name for f in fields(Matrix) if f.init)

SPEC_CHECKS: dict[str, Callable[[Any], object]] = {
    "suts": parse_sut,
    "dialects": check_dialect,
    "chunkings": parse_chunking,
    "latencies": _check_latency,
    "faults": lambda faults: [parse_fault(f) for f in faults],
}


def _sse_events(response: SutResponse) -> list[tuple[float, str, str]]:
    """``(t_ms, event name, data)`` of every SSE event in the SUT's response body."""
    decoder = SSEDecoder()
    events: list[tuple[float, str, str]] = []
    for t_ms, data in response.chunks:
        events.extend((t_ms, sse.event, sse.data) for sse in decoder.feed(data))
    end_ms = response.chunks[-1][0] if response.chunks else 0.0
    events.extend((end_ms, sse.event, sse.data) for sse in decoder.close())
    return events


def _answer_events(
    case: Case, response: SutResponse
) -> tuple[list[tuple[float, str, str]], str | None]:
    """The SSE events the SUT answered, and what is wrong with its JSON answer (a request
    without ``Accept: text/event-stream`` or one the case expects refused: grade/json_answer.py)."""
    if case.refused:
        return [], refusal_problem(response.chunks, case.expect_error)
    if case.wants_json:
        return run_answer_events(response.chunks)
    return _sse_events(response), None


def earlier_turns(case: Case, spec: RunSpec) -> tuple[list[Turn], tuple[str, ...]]:
    """The case's earlier turns as the SUT gets them (a body and the plans of its recordings,
    chunked as the run, never faulted), and what the thread holds after them: each turn's
    message and recorded answer text, which the judged turn's upstream request must carry."""
    latency = None if spec.latency == DEFAULT_LATENCY else spec.latency
    turns: list[Turn] = []
    history: list[str] = []
    for turn, body in zip(case.turns, case.turn_bodies(), strict=True):
        transcripts = cached_inputs(turn.upstream)
        plans = [build_plan(t, spec.chunking, latency, (), spec.seed) for t in transcripts]
        turns.append((body, plans))
        fates = [upstream_fate(t, mode=case.mode) for t in transcripts]
        context = turn.request.get("context")
        code = str(context.get("expression", "")) if isinstance(context, dict) else ""
        answer = recorded_answer(transcripts[served_upstream(fates)], case.mode, code, case.tool)
        history += [str(turn.request["content"]), answer.text or ""]
    return turns, tuple(h for h in history if h.strip())


def case_outcomes(
    case: Case, transcripts: Sequence[Transcript], plans: Sequence[ReplayPlan], faulted: bool
) -> list[Outcome]:
    """What a correct system may end with on this run (grade/expect.py): the case's ``expect``
    describes the upstream that serves a run without faults, the recordings the others."""
    answers = [recorded_answer(t, case.mode, case.expression, case.tool) for t in transcripts]
    served = served_upstream([upstream_fate(t, mode=case.mode) for t in transcripts])
    stated_code = case.expect_code if case.expect_code is not None else case.expect_yaml
    recorded = answers[served]
    answers[served] = Answer(
        case.expect_text if case.expect_text is not None else recorded.text,
        stated_code if stated_code is not None else recorded.code,
    )
    for i, (t, plan) in enumerate(zip(transcripts, plans, strict=True)):
        changed = planned_answer(t, plan, case.mode, case.expression, case.tool)
        if changed is not None and changed != Answer(None, None):
            answers[i] = changed  # a content fault changed what the model said
    fates = [upstream_fate(t, p, case.mode) for t, p in zip(transcripts, plans, strict=True)]
    return expected_outcomes(answers, fates, None if faulted else case.expect_terminal)


def _retry_after_s(plans: Sequence[ReplayPlan]) -> float | None:
    """The first upstream's retry-after on a 429/529 when a second attempt has a recording."""
    value = plans[0].headers.get("retry-after") if len(plans) > 1 else None
    # a 429 whose connection dropped (a chaos cut at byte 0) never told the SUT to wait
    if plans[0].status not in (429, 529) or value is None or plans[0].ending != "eof":
        return None
    try:
        return float(value)
    except ValueError:
        return None


def run_one(spec: RunSpec, host: ReplayHost | None = None) -> Row:
    """One run's result row (:class:`~streambench.runner.row.Row` has every column)."""
    case = cached_case(spec.case_path)
    transcripts = cached_inputs(case.upstream)
    plans = plans_of(spec, transcripts)
    sut = parse_sut(spec.sut)
    if case.has_http:
        contract = sut.contract.for_case(  # type: ignore[attr-defined]
            case.http_headers, case.http_body, case.expect_status, case.http_method, case.http_path
        )
        sut = replace(sut, contract=contract)  # type: ignore[type-var]
    body = case.request_body()
    earlier, history = earlier_turns(case, spec) if case.turns else ([], ())
    response = sut.call(body, plans, spec.timeouts, host, earlier)
    sse_events, answer_problem = _answer_events(case, response)
    dialect = "streambench" if case.wants_json else spec.dialect
    dialect_used, ui_events = parse_stream(dialect, sse_events)
    state = consume(ui_events)
    unknown = unknown_events(ui_events)
    calls = _upstream_calls(response, transcripts)
    sent = sut.request_json(body)

    analysed = [analyse_plan(plan, case.mode, case.tool) for plan in plans]
    made = analysed[: max(1, len(response.upstream_starts_ms))]
    served = served_call(made, state.final_text or state.streamed_text)
    offset = response.upstream_starts_ms[served] if response.upstream_starts_ms else 0.0
    upstream = made[served].shifted(offset)
    outcomes = case_outcomes(case, transcripts, plans, bool(spec.faults))
    starts = response.upstream_starts_ms
    ctx = RunContext(
        state,
        case.mode,
        expected=tuple(outcomes),
        n_upstreams=len(plans),
        first_upstream_failed_early=bool(plans[0].spec.get("faults"))
        and not plans[0].content_timeline,
        structured_complete_ms=upstream.structured_complete_ms,
        requested_order=sent.get("order", "changes_first")
        if isinstance(sent, dict)
        else "changes_first",
        status_code=response.status,
        sut_error=response.sut_error,
        expected_status=case.expect_status,
        json_answer=case.wants_json,
        refused=case.refused,
        answer_problem=answer_problem,
        history=history,
        expression=case.expression,
        retry_after_s=_retry_after_s(plans),
        upstream_window_ms=(starts[0], offset + plans[served].duration_ms) if starts else None,
        upstream_calls=calls,
        recorded_apis=frozenset(t.meta.api for t in transcripts),
        user_content=str(body["content"]) if isinstance(body.get("content"), str) else None,
        chain=spec.chain,
    )
    violations, not_checked = judge(ctx, load_profile(spec.profile_path))
    expected = outcomes[0]
    terminal = state.terminal
    row: Row = {
        **run_id(spec, case.name),
        "dialect_used": dialect_used,
        "case_path": spec.case_path,
        **compute_metrics(response.chunks, state, upstream),
        "terminal": state.terminal_kind,
        "provider": terminal.data.get("provider") if terminal else None,
        "error_message": terminal.data.get("message")
        if terminal and terminal.kind == "error"
        else None,
        "status_code": response.status,
        "sut_error": response.sut_error,
        "upstream_calls": len(response.upstream),
        "upstream_requests": json.dumps([call.as_dict() for call in calls]),
        "answer_call": served + 1 if response.upstream_starts_ms else None,
        "violations": [v.as_dict() for v in violations],
        "n_violations": len(violations),
        "unknown_events": sum(unknown.values()),
        "unknown_event_names": json.dumps(unknown, sort_keys=True),
        "streamed_text": state.streamed_text,
        "final_text": state.final_text,
        "expected_terminal": "/".join(dict.fromkeys(o.terminal for o in outcomes)),
        "expected_text": expected.answer.text,
        "expected_cause": expected.cause,
        "not_checked": not_checked,
        "statuses": [ev.text for ev in state.timeline if ev.kind == "status"],
        **code_quality(state, expected.answer.code),
        "timeline_json": json.dumps(
            _timeline(state.timeline, plans, response.upstream_starts_ms, spec.faults)
        ),
    }
    return row


def run_id(spec: RunSpec, case_name: str) -> RunId:
    """The id columns of ``spec``'s row (a chaos cell's faults per upstream call, `` | ``
    apart)."""
    chain = " | ".join(";".join(f) or "none" for f in spec.chain_faults)
    return {
        "case": case_name,
        "sut": spec.sut,
        "dialect": spec.dialect,
        "chunking": spec.chunking,
        "latency": spec.latency,
        "fault": chain if spec.chain_faults else ";".join(spec.faults),
        "seed": spec.seed,
    }


def _upstream_calls(response: SutResponse, transcripts: Sequence[Transcript]) -> list[UpstreamCall]:
    """What the replay saw of each upstream request, next to the recording that answered it."""
    calls = []
    timed = zip(response.upstream, response.upstream_starts_ms, strict=True)
    for position, (record, start_ms) in enumerate(timed):
        recorded = transcripts[record.plan_index % len(transcripts)]
        _, api = detect(record.url, b"")
        calls.append(
            UpstreamCall(
                record.method,
                record.url,
                api,
                recorded.meta.api,
                f"{recorded.request.method} {recorded.request.url}",
                start_ms,
                plan=record.plan_index,
                cycled=position >= len(transcripts),
                prompt=prompt_of(api, record.json),
            )
        )
    return calls


def prompt_of(api: str, body: Any) -> Prompt | None:
    """What an upstream request body asked, read by its API's provider module."""
    if not isinstance(body, dict):
        return None
    parts = registry.lookup(api).read_prompt(body)
    return Prompt(parts.user_text, parts.prefill, "\n".join(_strings(body)))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _timeline(
    events: list[UIEvent], plans: Sequence[Any], starts: list[float], faults: Sequence[str]
) -> list[dict[str, Any]]:
    """Upstream content, the injected fault and client events on the request's clock, for the
    report's player: client text and code in full (the player rebuilds the screen from them)."""
    rows = [
        {"t_ms": start + t_ms, "source": f"upstream {i + 1}", "kind": kind, "text": text[:80]}
        for i, start in enumerate(starts[: len(plans)])
        for t_ms, kind, text in plans[i].content_timeline
    ]
    faulted = [i for i, plan in enumerate(plans[: len(starts)]) if plan.spec.get("faults")]
    if faults and faulted:
        # marked on the upstream the faults hit, where its delivery stopped
        hit = plans[faulted[0]]
        rows.append(
            {
                "t_ms": starts[faulted[0]] + hit.duration_ms,
                "source": f"upstream {faulted[0] + 1}",
                "kind": "fault",
                "text": f"{';'.join(faults)} (HTTP {hit.status}, {hit.ending})",
            }
        )
    rows += [
        {
            "t_ms": ev.t_ms,
            "source": "client",
            "kind": ev.kind,
            "text": ev.text or "",
            **({"code": ev.code} if ev.code is not None else {}),
        }
        for ev in events
    ]
    return sorted(rows, key=lambda r: r["t_ms"])


def run_matrix(
    matrix: Matrix,
    executor: Executor | None = None,
    progress: Progress | None = None,
    on_host: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Every run of ``matrix`` as one DataFrame, rows sorted by the id columns.

    HTTP SUTs run here, one after another, against one loopback replay host (``on_host`` gets
    its URL); ``sut_cmd`` starts the SUT first and stops it afterwards. A matrix too large to
    hold in memory streams its rows to disk instead (:func:`iter_matrix`,
    :func:`streambench.report.files.write_streamed`).
    """
    return run_specs(
        matrix.validate(),
        matrix.sut_cmd,
        matrix.replay_port,
        executor,
        progress,
        on_host,
        profile=matrix.profile,
    )


def iter_matrix(
    matrix: Matrix,
    executor: Executor | None = None,
    progress: Progress | None = None,
    on_host: Callable[[str], None] | None = None,
) -> Iterator[Row]:
    """:func:`run_matrix`'s rows one at a time as runs finish, before the cross-run rules
    (:func:`add_cross_run_violations`) and unsorted: nothing is held here."""
    return iter_specs(
        matrix.validate(), matrix.sut_cmd, matrix.replay_port, executor, progress, on_host
    )


def iter_specs(
    specs: Sequence[RunSpec],
    sut_cmd: str | None = None,
    replay_port: int = 0,
    executor: Executor | None = None,
    progress: Progress | None = None,
    on_host: Callable[[str], None] | None = None,
    *,
    in_order: bool = False,
) -> Iterator[Row]:
    """The rows of ``specs`` as :func:`run_specs` runs them, one at a time as runs finish:
    in-process SUTs on ``executor``, then HTTP ones (or, ``in_order``, every spec) one after
    another against one replay host, numbered in ``run_order`` when ``in_order``."""
    http = [s for s in specs if parse_sut(s.sut).over_http]
    local = [] if in_order else [s for s in specs if s not in http]
    if local:
        yield from (executor or LocalExecutor()).map(run_one, local, progress)
    if not (http or in_order):
        return
    with replay_host(replay_port) as host:
        if on_host is not None:
            on_host(host.url)
        urls = sorted({str(parse_sut(s.sut).address) for s in http})
        if sut_cmd and len(urls) != 1:
            raise ConfigError("starts one SUT: give exactly one http:// SUT", param="sut_cmd")
        with sut_process(sut_cmd, urls[0], host.url) if sut_cmd else nullcontext():
            ordered = specs if in_order else http
            rows = LocalExecutor(1).map(partial(run_one, host=host), ordered, progress)
            for number, row in enumerate(rows):
                if in_order:
                    row["run_order"] = number
                yield row


def run_specs(
    specs: Sequence[RunSpec],
    sut_cmd: str | None = None,
    replay_port: int = 0,
    executor: Executor | None = None,
    progress: Progress | None = None,
    on_host: Callable[[str], None] | None = None,
    *,
    profile: str | None = None,
    in_order: bool = False,
) -> pd.DataFrame:
    """The rows of ``specs`` (any list of runs, not only a product of axes), as
    :func:`run_matrix`: HTTP SUTs one after another, in the order given. ``in_order`` runs
    every spec one at a time in the order given (in-process ones too) and numbers the rows in
    a ``run_order`` column: what an experiment interleaving real-time SUTs needs. ``profile``
    selects the cross-run rules (the per-run ones follow each spec's profile)."""
    rows = list(
        iter_specs(specs, sut_cmd, replay_port, executor, progress, on_host, in_order=in_order)
    )
    import pandas as pd  # only a frame of every row needs it (`streambench run` spools rows)

    rows = add_cross_run_violations(rows, load_profile(profile))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    return frame.sort_values(list(ID_COLUMNS), kind="stable").reset_index(drop=True)


def add_cross_run_violations(
    rows: Sequence[Row], selected: dict[str, dict[str, Any]]
) -> Sequence[Row]:
    """The rows with the cross-run rules' violations (split-variance, ...) added."""
    found = cross_run_violations(rows, selected)  # type: ignore[arg-type]
    for index, violations in found.items():
        row = rows[index]
        row["violations"] = [*row["violations"], *(v.as_dict() for v in violations)]
        row["n_violations"] = len(row["violations"])
    return rows
