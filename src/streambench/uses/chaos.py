"""Chaos matrix for provider failover: every fault kind x stream position x place in the chain.

The fault kinds are the replay's transport faults (:mod:`streambench.replay.faults`) and a small
content-fault axis (``pings``, ``empty-deltas`` mid-text: the answer must come through whole).

A chain of providers (``anthropic,openai`` ...) is built over a private httpx client whose
requests are answered by replays: the providers before the one under test fail with HTTP 500
(so the chain reaches it), the one under test gets the fault, the ones after it are healthy.
Each provider streams a text of its own, so whatever the user saw can be traced back to who
sent it. Every cell is checked against the failover contract (skytwin #151):

* ``terminal-count``: exactly one terminal (done or error; an exception counts), and it is last;
* ``duplicate-output``: everything shown comes from one provider, as a prefix of its text;
* ``partial-mismatch``: the terminal's content (done) or partial content (error) is what was shown;
* ``fallthrough``: a failure before the first chunk falls through to the next provider (or ends
  in an error with nothing shown when it was the last); a failure after it never does.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from streambench.errors import SpecError
from streambench.providers.apis import event_content
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
from streambench.sse import decode_all
from streambench.transcript import Transcript, synth

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
# Content faults a provider commits mid-text that must change nothing the user sees: keep-alive
# events and empty deltas between the text deltas.
CONTENT_KINDS = ("pings", "empty-deltas")
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
RULES = ("terminal-count", "duplicate-output", "partial-mismatch", "fallthrough")
DEFAULT_PROVIDERS = ("anthropic", "openai", "anthropic-sync")
_N_DELTAS = 6


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


def _host(index: int) -> str:
    return f"provider-{index}.chaos.invalid"


def _upstream(kind: str, index: int) -> _Upstream:
    api = KINDS[kind][0].api
    name = f"{index}:{kind}"
    text = f"[{name}] the answer, in {_N_DELTAS} deltas of text."
    deltas = [
        text[len(text) * i // _N_DELTAS : len(text) * (i + 1) // _N_DELTAS]
        for i in range(_N_DELTAS)
    ]
    streaming = KINDS[kind][1]
    body = synth.render(api, deltas=deltas) if streaming else synth.render_json_response(api, text)
    transcript = synth.make_transcript(api, body, request_body={"stream": streaming})
    events = decode_all(body) if streaming else []
    carrying = [
        i for i, ev in enumerate(events) if any(k == "text" for k, _ in event_content(api, ev))
    ]
    first, last = (carrying[0], carrying[-1]) if carrying else (0, 0)
    return _Upstream(kind, name, text, transcript, first, last, max(len(events) - 1, 0))


def _fault_spec(kind: str, position: str, upstream: _Upstream) -> str | None:
    """The replay fault spec for ``kind`` at ``position`` of ``upstream``'s stream, None when
    the combination does not exist (HTTP errors only come before the first byte; event
    positions need a streaming provider)."""
    if position == "before-first-byte":
        return _BEFORE_FIRST_BYTE.get(kind)
    if kind in ("http", "rate-limit"):
        return None
    if kind in CONTENT_KINDS:
        return f"{kind}:3" if upstream.streaming and position == "mid-text" else None
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
    return f"stall@event={event},ms=3000" if kind == "stall" else f"{kind}@event={event}"


def transcript_faults(transcript: Transcript) -> dict[tuple[str, str], str]:
    """The chaos matrix's faults (kind x position -> spec) placed on a recorded stream, for
    ``streambench run --fault`` (event positions count the recorded events: events chunking)."""
    api = transcript.meta.api
    events = decode_all(transcript.response.body)
    carrying = [
        i for i, ev in enumerate(events) if any(k == "text" for k, _ in event_content(api, ev))
    ]
    first, last = (carrying[0], carrying[-1]) if carrying else (0, 0)
    upstream = _Upstream("anthropic", "", "", transcript, first, last, max(len(events) - 1, 0))
    found = {}
    for position in POSITIONS:
        for kind in FAULT_KINDS:
            spec = _fault_spec(kind, position, upstream)
            if spec is not None:
                found[(kind, position)] = spec
    return found


def cells(providers: Sequence[str]) -> list[Cell]:
    """Every meaningful cell for a chain of ``providers`` (kinds of :data:`KINDS`)."""
    upstreams = [_upstream(kind, i) for i, kind in enumerate(parse_providers(",".join(providers)))]
    found = []
    for index, upstream in enumerate(upstreams):
        for position in POSITIONS:
            for kind in FAULT_KINDS:
                spec = _fault_spec(kind, position, upstream)
                if spec is not None:
                    found.append(Cell(kind, position, index, upstream.name, spec))
    return found


def _expected_failure(cell: Cell) -> bool:
    return cell.kind not in _HARMLESS


def check(
    cell: Cell, upstreams: Sequence[_Upstream], events: Sequence[StreamEvent | Exception]
) -> list[tuple[str, str]]:
    """The failover-contract violations of one cell's observed events."""
    violations: list[tuple[str, str]] = []
    terminals = [i for i, e in enumerate(events) if not isinstance(e, Chunk)]
    if len(terminals) != 1 or terminals[0] != len(events) - 1:
        violations.append(("terminal-count", f"{len(terminals)} terminal events, want 1, last"))
    shown = "".join(e.text for e in events if isinstance(e, Chunk))
    sources = [u for u in upstreams if shown and u.text.startswith(shown)]
    if shown and not sources:
        violations.append(("duplicate-output", f"shown text mixes providers: {shown!r}"))
    terminal = events[-1] if events else None
    if isinstance(terminal, StreamDone) and terminal.full_content != shown:
        violations.append(("partial-mismatch", "done content differs from the text shown"))
    if isinstance(terminal, StreamFailed) and terminal.partial_content != shown:
        violations.append(("partial-mismatch", "error partial_content differs from the text shown"))
    if isinstance(terminal, Exception) and shown:
        violations.append(("partial-mismatch", f"raised after text was shown: {terminal}"))
    if not _expected_failure(cell):
        want = upstreams[cell.chain_index]
    elif cell.mid_stream:
        want = None
        if isinstance(terminal, StreamDone):
            violations.append(("fallthrough", "failed after the first chunk, yet ended in done"))
    else:
        later = upstreams[cell.chain_index + 1 :]
        want = later[0] if later else None
        if want is None and shown:
            violations.append(("fallthrough", "every provider failed, yet text was shown"))
    if want is not None and not (isinstance(terminal, StreamDone) and shown == want.text):
        got = terminal.provider if isinstance(terminal, StreamDone) else type(terminal).__name__
        violations.append(("fallthrough", f"want done from {want.name}, got {got}"))
    return violations


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
    for index, upstream in enumerate(upstreams):
        faults = []
        if index < cell.chain_index:
            faults = ["http:500@start"]
        elif index == cell.chain_index:
            faults = [cell.fault]
        plan = build_plan(
            upstream.transcript, latency="const:ttfb=50,gap=10", faults=faults, seed=seed
        )
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
        raise SpecError(f"--sut {spec!r}: expected 'reference' or module:attr")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"--sut {spec!r}: cannot load: {exc}") from None
    if not callable(target):
        raise SpecError(f"--sut {spec!r}: {attr} is not callable")
    return target


def parse_providers(spec: str) -> list[str]:
    names = [p.strip() for p in spec.split(",") if p.strip()]
    if not names:
        raise SpecError(f"--providers {spec!r}: name at least one provider")
    for name in names:
        if name not in KINDS:
            raise SpecError(f"--providers {spec!r}: unknown {name!r} (known: {', '.join(KINDS)})")
    return names


def run_chaos(
    providers: Sequence[str] = DEFAULT_PROVIDERS,
    factory: ChainFactory = LLMClient,
    seed: int = 0,
    progress: Callable[[CellResult], None] | None = None,
) -> list[CellResult]:
    """Run every cell (in virtual time: stalls and retry-after waits cost nothing)."""

    async def run_all() -> list[CellResult]:
        results = []
        for cell in cells(providers):
            result = await run_cell(cell, providers, factory, seed)
            if progress is not None:
                progress(result)
            results.append(result)
        return results

    return run_virtual(run_all())
