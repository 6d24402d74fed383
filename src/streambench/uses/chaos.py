"""Chaos matrix for provider failover: every fault kind x stream position x place in the chain.

The fault kinds are the replay's transport faults (:mod:`streambench.replay.faults`) and a small
content-fault axis (``pings``, ``empty-deltas``, ``blocks:reorder``, ``tool:split-args``: the
answer must come through whole).

Each cell is one run whose upstream calls get planned faults in order: the calls before the
place under test fail with HTTP 500 (so the chain reaches it), the one at it gets the fault,
the ones after it are healthy. Each upstream answers a text of its own, so whatever the user
saw can be traced back to who sent it. Two ways to run a cell:

* :func:`run_sut_chaos`: any system under test (``reference``, an ASGI ``module:attr``, an
  ``http://`` server, started with ``sut_cmd``), through the runner's :func:`run_one`;
* :func:`run_chaos`: a provider-chain object of the reference's own API (``LLMClient``-like),
  in process, without an app around it.

Cells are chat requests answered in text; with ``answer="tool"`` (SUT mode) they are job_code
requests whose upstreams call the answer tool (edits, then the text in its ``text_answer``), so
a tool-call design is held to the same contract on its own streams.

Both are graded by the one rule registry (grade/rules.py) with the cell's chain contract in
:attr:`RunContext.chain`: ``terminal-count``, ``duplicate-after-failover``,
``partial-mismatch`` and ``no-fallthrough`` carry the failover contract (skytwin #151).
"""

from __future__ import annotations

import importlib
import json
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from streambench.errors import SpecError
from streambench.grade.client import consume
from streambench.grade.dialects import UIEvent
from streambench.grade.rules import ChainStep, RunContext, check_rules
from streambench.providers.apis import event_content
from streambench.reference.assistant import TOOL_NAMES
from streambench.reference.chain import (
    AllProvidersFailed,
    Chunk,
    LLMClient,
    StreamDone,
    StreamEvent,
    StreamFailed,
)
from streambench.reference.providers import KINDS, LLMRequest, Provider
from streambench.replay import ReplayTransport, build_plan, run_virtual
from streambench.replay.faults import TRANSPORT_FAULT_KINDS
from streambench.runner.matrix import RunSpec, run_specs
from streambench.sse import SSEEvent, decode_all
from streambench.suts import SutTimeouts, parse_sut
from streambench.transcript import Transcript, save, synth

POSITIONS = (
    "before-first-byte",
    "before-first-chunk",
    "after-first-chunk",
    "mid-text",
    "at-terminal",
)
MID_STREAM = frozenset({"after-first-chunk", "mid-text", "at-terminal"})
# duplicate@ is left out on purpose: a provider that repeats an event corrupts its own text,
# which no chain can detect; it is a parser test, not a failover test.
_LEFT_OUT = {"http", "duplicate"}
# Content faults a provider commits that must change nothing the user sees: keep-alive events
# and empty deltas between the text deltas, the thinking block moved after the text, the two
# tool calls' argument deltas interleaved (each upstream thinks first and calls two tools).
CONTENT_FAULTS = {
    "pings": "pings:3",
    "empty-deltas": "empty-deltas:3",
    "blocks": "blocks:reorder",
    "tool": "tool:split-args",
}
CONTENT_KINDS = tuple(CONTENT_FAULTS)
FAULT_KINDS = (
    "http",
    "rate-limit",  # http:429 with retry-after
    *(kind for kind in TRANSPORT_FAULT_KINDS if kind not in _LEFT_OUT),
    *CONTENT_KINDS,
)
_HARMLESS = {"stall", *CONTENT_KINDS}
_BEFORE_FIRST_BYTE = {
    "http": "http:500@start",
    # retry-after is honoured before the first chunk, within a bounded budget, then falls through
    "rate-limit": "http:429@start,retry_after=3",
    "disconnect": "disconnect@bytes=0",
}
# The registry rules that carry the failover contract (the chain mode checks only these).
CONTRACT_RULES = (
    "terminal-count",
    "duplicate-after-failover",
    "partial-mismatch",
    "no-fallthrough",
)
# A SUT's retry of the same provider takes the next recording in call order, so a 429 cell
# cannot say which provider answered: rate limits are the chain mode's (and retry-after rules').
SUT_FAULT_KINDS = tuple(kind for kind in FAULT_KINDS if kind != "rate-limit")
CHAOS_LATENCY = "const:ttfb=50,gap=10"
DEFAULT_PROVIDERS = ("anthropic", "openai", "anthropic-sync")
_N_DELTAS = 6
ANSWERS = ("text", "tool")  # how each upstream answers a cell: plain text, or the answer tool


class ChainFactory(Protocol):
    """What ``--sut module:attr`` names: builds an LLMClient-like chain over ``http``."""

    def __call__(self, providers: Sequence[Provider], http: httpx.AsyncClient) -> Any: ...


@dataclass(frozen=True)
class Cell:
    kind: str
    position: str
    chain_index: int
    chain_provider: str  # e.g. "1:openai": place and kind of the provider under the fault
    fault: str

    @property
    def mid_stream(self) -> bool:
        return self.position in MID_STREAM


@dataclass
class CellResult:
    cell: Cell
    outcome: str  # done | error | raised | none
    provider: str | None
    shown: str
    violations: list[tuple[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.cell.kind,
            "position": self.cell.position,
            "chain_index": self.cell.chain_index,
            "chain_provider": self.cell.chain_provider,
            "fault": self.cell.fault,
            "outcome": self.outcome,
            "provider": self.provider,
            "shown": self.shown,
            "passed": self.passed,
            "violations": [{"rule": r, "message": m} for r, m in self.violations],
        }


@dataclass(frozen=True)
class _Upstream:
    """One provider of the chain and the stream it answers with."""

    kind: str
    name: str
    text: str
    transcript: Transcript
    first_text_event: int
    last_text_event: int
    terminal_event: int

    @property
    def streaming(self) -> bool:
        return KINDS[self.kind][1]


# What each streaming upstream also says around its text; a chat chain shows neither.
_THINKING = "The user wants an answer; two look-ups first."
_TOOL_CALLS = (
    synth.ToolCall("lookup", '{"query": "the answer", "limit": 3}'),
    synth.ToolCall("lookup", '{"query": "its source", "limit": 1}'),
)


def _host(index: int) -> str:
    return f"provider-{index}.chaos.invalid"


def _upstream(kind: str, index: int, answer: str = "text") -> _Upstream:
    api = KINDS[kind][0].api
    name = f"{index}:{kind}"
    text = f"[{name}] the answer, in {_N_DELTAS} deltas of text."
    deltas = [
        text[len(text) * i // _N_DELTAS : len(text) * (i + 1) // _N_DELTAS]
        for i in range(_N_DELTAS)
    ]
    streaming = KINDS[kind][1]
    if answer == "tool":
        edits = [{"action": "rewrite", "new_code": f"// written by {name}\n"}]
        arguments = json.dumps({"code_edits": edits, "text_answer": text})
        calls = (synth.ToolCall(TOOL_NAMES["job_code"], arguments),)
        body = (
            synth.render(api, deltas=[], tool_calls=calls)
            if streaming
            else synth.render_json_response(api, "", tool_calls=calls)
        )
    else:
        body = (
            synth.render(api, deltas=deltas, thinking=_THINKING, tool_calls=_TOOL_CALLS)
            if streaming
            else synth.render_json_response(api, text)
        )
    transcript = synth.make_transcript(api, body, request_body={"stream": streaming})
    events = decode_all(body) if streaming else []
    # a text answer's positions count its text, not the tool calls around it
    kinds = ("tool_json",) if answer == "tool" else ("text",)
    return _Upstream(kind, name, text, transcript, *_carrying(api, events, kinds))


def _carrying(
    api: str, events: Sequence[SSEEvent], kinds: Sequence[str] = ("text", "tool_json")
) -> tuple[int, int, int]:
    """The first and last events carrying answer content (text or tool input), and the last."""
    carrying = [
        i
        for i, ev in enumerate(events)
        if any(k in kinds and piece for k, piece in event_content(api, ev))
    ]
    first, last = (carrying[0], carrying[-1]) if carrying else (0, 0)
    return first, last, max(len(events) - 1, 0)


def _fault_spec(kind: str, position: str, upstream: _Upstream, stall_ms: int) -> str | None:
    """The replay fault spec for ``kind`` at ``position`` of ``upstream``'s stream, None when
    the combination does not exist (HTTP errors only come before the first byte; event
    positions need a streaming provider; a content fault needs what it changes in the stream)."""
    if position == "before-first-byte":
        return _BEFORE_FIRST_BYTE.get(kind)
    if kind in ("http", "rate-limit"):
        return None
    if kind in CONTENT_KINDS:
        spec = CONTENT_FAULTS[kind]
        if not upstream.streaming or position != "mid-text":
            return None
        return spec if _applies(upstream.transcript, spec) else None
    if not upstream.streaming:
        # a JSON answer is one chunk: the only position inside it is before that chunk
        if position == "before-first-chunk" and kind == "disconnect":
            return f"disconnect@bytes={len(upstream.transcript.response.body) // 2}"
        return None
    event = {
        "before-first-chunk": upstream.first_text_event,
        "after-first-chunk": upstream.first_text_event + 1,
        "mid-text": (upstream.first_text_event + upstream.last_text_event + 1) // 2,
        "at-terminal": upstream.terminal_event,
    }[position]
    return f"stall@event={event},ms={stall_ms}" if kind == "stall" else f"{kind}@event={event}"


def transcript_faults(transcript: Transcript) -> dict[tuple[str, str], str]:
    """The chaos matrix's faults (kind x position -> spec) placed on a recorded stream, for
    ``streambench run --fault`` (event positions count the recorded events: events chunking)."""
    events = decode_all(transcript.response.body)
    upstream = _Upstream("anthropic", "", "", transcript, *_carrying(transcript.meta.api, events))
    found = {}
    for position in POSITIONS:
        for kind in FAULT_KINDS:
            spec = _fault_spec(kind, position, upstream, 3000)
            if spec is not None:
                found[(kind, position)] = spec
    return found


def _applies(transcript: Transcript, spec: str) -> bool:
    """Whether a content fault has what it changes in this stream (two tool calls, blocks of
    several kinds ...)."""
    try:
        build_plan(transcript, faults=[spec])
    except SpecError:
        return False
    return True


def cells(
    providers: Sequence[str],
    kinds: Sequence[str] = FAULT_KINDS,
    stall_ms: int = 3000,
    answer: str = "text",
) -> list[Cell]:
    """Every meaningful cell for a chain of ``providers`` (kinds of :data:`KINDS`)."""
    chain = parse_providers(",".join(providers))
    upstreams = [_upstream(kind, i, answer) for i, kind in enumerate(chain)]
    found = []
    for index, upstream in enumerate(upstreams):
        for position in POSITIONS:
            for kind in kinds:
                spec = _fault_spec(kind, position, upstream, stall_ms)
                if spec is not None:
                    found.append(Cell(kind, position, index, upstream.name, spec))
    return found


def _expected_failure(cell: Cell) -> bool:
    return cell.kind not in _HARMLESS


def cell_faults(cell: Cell, n_upstreams: int) -> tuple[tuple[str, ...], ...]:
    """The faults of each upstream call of ``cell``, in call order."""
    return tuple(
        ("http:500@start",)
        if i < cell.chain_index
        else (cell.fault,)
        if i == cell.chain_index
        else ()
        for i in range(n_upstreams)
    )


def chain_steps(cell: Cell, upstreams: Sequence[_Upstream]) -> tuple[ChainStep, ...]:
    """The chain contract of ``cell``: each upstream's answer and how its fault ends it (a stall
    or a harmless content fault must not fail at all; any other fault fails early before the
    first chunk, late after)."""
    steps = []
    for index, upstream in enumerate(upstreams):
        failure = None
        if index < cell.chain_index:
            failure = "early"
        elif index == cell.chain_index and _expected_failure(cell):
            failure = "late" if cell.mid_stream else "early"
        steps.append(ChainStep(upstream.text, failure))
    return tuple(steps)


def _ui_events(events: Sequence[StreamEvent | Exception]) -> list[UIEvent]:
    """A chain's events as the client sees them; an exception is an error with nothing in it."""
    found = []
    for t_ms, event in enumerate(events):
        if isinstance(event, Chunk):
            found.append(UIEvent(float(t_ms), "text", text=event.text))
        elif isinstance(event, StreamDone):
            data = {"provider": event.provider}
            found.append(UIEvent(float(t_ms), "done", text=event.full_content, data=data))
        elif isinstance(event, StreamFailed):
            found.append(UIEvent(float(t_ms), "error", text=event.partial_content))
        else:
            found.append(UIEvent(float(t_ms), "error", text="", data={"raised": str(event)}))
    return found


def check(
    cell: Cell, upstreams: Sequence[_Upstream], events: Sequence[StreamEvent | Exception]
) -> list[tuple[str, str]]:
    """The failover-contract violations of one cell's observed events, by the registry rules."""
    ctx = RunContext(
        consume(_ui_events(events)),
        "chat",
        n_upstreams=len(upstreams),
        chain=chain_steps(cell, upstreams),
    )
    return [(v.rule, v.message) for v in check_rules(ctx, {slug: {} for slug in CONTRACT_RULES})]


class _Router(httpx.AsyncBaseTransport):
    """Sends each provider's requests to its own replay transport, by host."""

    def __init__(self, transports: dict[str, httpx.AsyncBaseTransport]) -> None:
        self.transports = transports

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)


def _providers(upstreams: Sequence[_Upstream]) -> list[Provider]:
    found: list[Provider] = []
    for index, upstream in enumerate(upstreams):
        cls, streaming = KINDS[upstream.kind]
        base_url = f"http://{_host(index)}" + ("/v1" if cls is not KINDS["anthropic"][0] else "")
        model = synth.DEFAULT_MODELS[upstream.transcript.meta.api]
        found.append(cls(upstream.name, base_url, "chaos-key", model, streaming=streaming))
    return found


async def _collect(events: AsyncIterator[StreamEvent]) -> list[StreamEvent | Exception]:
    seen: list[StreamEvent | Exception] = []
    try:
        async for event in events:
            seen.append(event)
    except AllProvidersFailed as exc:
        seen.append(exc)
    except Exception as exc:  # a pluggable chain may raise anything: that is its terminal
        seen.append(exc)
    return seen


async def run_cell(
    cell: Cell, providers: Sequence[str], factory: ChainFactory = LLMClient, seed: int = 0
) -> CellResult:
    """Run one cell of the matrix and check it against the contract."""
    upstreams = [_upstream(kind, i) for i, kind in enumerate(providers)]
    transports: dict[str, httpx.AsyncBaseTransport] = {}
    for index, (upstream, faults) in enumerate(
        zip(upstreams, cell_faults(cell, len(upstreams)), strict=True)
    ):
        plan = build_plan(upstream.transcript, latency=CHAOS_LATENCY, faults=faults, seed=seed)
        transports[_host(index)] = ReplayTransport([plan])
    request = LLMRequest(system="chaos", messages=[{"role": "user", "content": "hi"}])
    async with httpx.AsyncClient(transport=_Router(transports)) as http:
        chain = factory(_providers(upstreams), http)
        events = await _collect(chain.generate_stream(request))
    shown = "".join(e.text for e in events if isinstance(e, Chunk))
    terminal = events[-1] if events else None
    outcome = {StreamDone: "done", StreamFailed: "error"}.get(type(terminal), "none")
    if isinstance(terminal, Exception):
        outcome = "raised"
    provider = terminal.provider if isinstance(terminal, StreamDone) else None
    return CellResult(cell, outcome, provider, shown, check(cell, upstreams, events))


def load_factory(spec: str | None) -> ChainFactory:
    """``None`` -> the reference :class:`LLMClient`; ``module:attr`` -> that factory."""
    if spec is None or spec == "reference":
        return LLMClient
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SpecError(f"{spec!r}: expected 'reference' or module:attr", param="chain")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"{spec!r}: cannot load: {exc}", param="chain") from None
    if not callable(target):
        raise SpecError(f"{spec!r}: {attr} is not callable", param="chain")
    return target


def parse_providers(spec: str) -> list[str]:
    names = [p.strip() for p in spec.split(",") if p.strip()]
    if not names:
        raise SpecError(f"{spec!r}: name at least one provider", param="providers")
    for name in names:
        if name not in KINDS:
            raise SpecError(
                f"{spec!r}: unknown {name!r} (known: {', '.join(KINDS)})", param="providers"
            )
    return names


def run_chaos(
    providers: Sequence[str] = DEFAULT_PROVIDERS,
    factory: ChainFactory = LLMClient,
    seed: int = 0,
    progress: Callable[[CellResult], None] | None = None,
    kinds: Sequence[str] = FAULT_KINDS,
) -> list[CellResult]:
    """Run every cell of a provider-chain object (in virtual time: stalls and retry-after
    waits cost nothing), graded by the registry's :data:`CONTRACT_RULES`."""

    async def run_all() -> list[CellResult]:
        results = []
        for cell in cells(providers, kinds):
            result = await run_cell(cell, providers, factory, seed)
            if progress is not None:
                progress(result)
            results.append(result)
        return results

    return run_virtual(run_all())


def parse_kinds(spec: str | None, known: Sequence[str] = FAULT_KINDS) -> tuple[str, ...]:
    """``http,disconnect`` -> those fault kinds; None -> every one of ``known``."""
    if spec is None:
        return tuple(known)
    names = tuple(k.strip() for k in spec.split(",") if k.strip())
    for name in names:
        if name not in known:
            raise SpecError(
                f"{spec!r}: unknown {name!r} (known: {', '.join(known)})", param="kinds"
            )
    if not names:
        raise SpecError(f"{spec!r}: name at least one fault kind", param="kinds")
    return names


def _with_chain(sut: str, providers: Sequence[str], answer: str = "text") -> str:
    """The reference plays the chain it is given: ``providers=`` set unless the spec has one
    (and ``structured=tool`` for tool answers)."""
    if sut != "reference" and not sut.startswith("reference:"):
        return sut
    options = [] if "providers=" in sut else ["providers=" + "+".join(providers)]
    if answer == "tool" and "structured=" not in sut:
        options.append("structured=tool")
    if not options:
        return sut
    return f"reference:{','.join(options)}" if sut == "reference" else f"{sut},{','.join(options)}"


def _write_cells(
    folder: Path, found: Sequence[Cell], upstreams: Sequence[_Upstream], answer: str = "text"
) -> list[tuple[Path, tuple[ChainStep, ...]]]:
    """One case per cell (chat; job_code for tool answers), all on the chain's synthesized
    recordings."""
    names = []
    for index, upstream in enumerate(upstreams):
        save(upstream.transcript, folder / f"upstream-{index}.yaml")
        names.append(f"../upstream-{index}.yaml")
    written = []
    for number, cell in enumerate(found):
        # no expect: the expected outcome comes from the recordings and the planned faults
        case = {
            "name": f"chaos-{number:03d}",
            "mode": "job_code" if answer == "tool" else "chat",
            "request": {"content": "Say something.", "context": {"expression": ""}},
            "upstream": names,
        }
        path = folder / f"cell-{number:03d}" / "case.yaml"
        path.parent.mkdir()
        path.write_text(yaml.safe_dump(case, sort_keys=False), encoding="utf-8")
        written.append((path, chain_steps(cell, upstreams)))
    return written


def run_sut_chaos(
    sut: str = "reference",
    providers: Sequence[str] = ("anthropic", "openai"),
    *,
    kinds: Sequence[str] = SUT_FAULT_KINDS,
    sut_cmd: str | None = None,
    replay_port: int = 0,
    dialect: str = "streambench",
    profile: str | None = None,
    seed: int = 0,
    timeouts: SutTimeouts | None = None,
    progress: Callable[[int], None] | None = None,
    answer: str = "text",
) -> list[CellResult]:
    """Every cell as one run of ``sut`` whose upstream calls get the cell's faults in order
    (``providers``: the APIs of the SUT's chain, in the order it calls them), graded by every
    rule of the ``profile`` file (default: all) with the cell's chain contract. HTTP SUTs run
    in real time, so their stalls are short (300 ms); ``sut_cmd`` starts one, else it must be
    running with its provider base URLs on the replay host's ``replay_port``. ``answer``:
    ``text`` (chat cells) or ``tool`` (job_code cells answered by the answer tool)."""
    if answer not in ANSWERS:
        raise SpecError(f"answer {answer!r}: expected one of {', '.join(ANSWERS)}")
    sut = _with_chain(sut, providers, answer)
    over_http = parse_sut(sut).over_http
    found = cells(providers, kinds, stall_ms=300 if over_http else 3000, answer=answer)
    upstreams = [_upstream(kind, i, answer) for i, kind in enumerate(providers)]
    with tempfile.TemporaryDirectory(prefix="streambench-chaos-") as tmp:
        specs = [
            RunSpec(
                str(path),
                sut,
                dialect,
                "events",
                CHAOS_LATENCY,
                seed=seed,
                profile_path=profile,
                timeouts=timeouts or SutTimeouts(),
                chain_faults=cell_faults(cell, len(upstreams)),
                chain=steps,
            )
            for cell, (path, steps) in zip(
                found, _write_cells(Path(tmp), found, upstreams, answer), strict=True
            )
        ]
        frame = run_specs(specs, sut_cmd, replay_port, progress=progress, profile=profile)
    rows = {row["case"]: row for row in frame.to_dict("records")}
    results = []
    for number, cell in enumerate(found):
        row = rows[f"chaos-{number:03d}"]
        violations = [(v["rule"], v["message"]) for v in row["violations"]]
        results.append(
            CellResult(cell, row["terminal"], row["provider"], row["streamed_text"], violations)
        )
    return results
