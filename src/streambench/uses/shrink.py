"""From a failing run to a minimal regression case: ``streambench shrink``.

The search re-runs the SUT on candidate variants and keeps a candidate only when it still
fails with the same rule (and with no rule the original run did not break). It reduces, in
order: the faults (drop each, then move each to the earliest position that still fails), the
latency (to none), the upstream content (fewest content deltas, then fewest characters, then
fewest delta boundaries: delta debugging over each list), then the transport cut points
(none, else ddmin over the explicit ``cuts:`` of the variant). Every step is seeded or
ordered, so the same input gives the same output; the search stops at its time budget with
the smallest failing variant found so far.

Content is reduced inside the provider's own events (:func:`~streambench.replay.deltas.
with_contents`): every other event is kept byte for byte, and a structured answer
(job_code / workflow) must stay valid JSON, so the minimal stream is one the provider could
send. The case's expected answer follows the reduced recording it was decoded from.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import shlex
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from streambench._atomic import atomic_write_text
from streambench.answer import SHAPES
from streambench.errors import ConfigError, StreambenchError
from streambench.grade.expect import recorded_answer
from streambench.grade.rules import CROSS_RUN_RULES
from streambench.replay import build_plan, parse_chunking, parse_fault
from streambench.replay.deltas import content_deltas, with_contents
from streambench.replay.frames import frames_of
from streambench.replay.json_text import json_spans
from streambench.replay.plan import resplit_transcript
from streambench.report.files import run_id
from streambench.runner.cases import Case, case_files, load_case, surface_keys
from streambench.runner.matrix import DEFAULT_LATENCY, RunSpec, parse_faults, run_one
from streambench.suts import parse_sut, replay_host
from streambench.transcript import Transcript, load_inputs, save

T = TypeVar("T")
NO_LATENCY = "const:ttfb=0,gap=0"
DEFAULT_BUDGET_S = 60.0
# Positions tried when moving a fault earlier: every one up to here, then a spread below it.
_EARLY_POSITIONS = 8


@dataclass(frozen=True)
class Size:
    """How big a variant is: upstream SSE events and content characters delivered (over all
    upstream calls), transport cuts (chunk boundaries) and faults."""

    events: int
    chars: int
    cuts: int
    faults: int

    def __str__(self) -> str:
        return f"{self.events} events, {self.chars} chars, {self.cuts} cuts, {self.faults} faults"


@dataclass(frozen=True)
class Variant:
    """One candidate: the upstream transcripts (reduced or not) and the plan's explicit specs."""

    transcripts: tuple[Transcript, ...]
    chunking: str
    latency: str
    faults: tuple[str, ...]
    expect: dict[str, str | None]


@dataclass
class ShrinkResult:
    """What a shrink produced: ``case_dir`` (case.yaml, the transcripts, the pytest file)."""

    rule: str
    source: str
    before: Size
    after: Size
    variant: Variant
    runs: int
    elapsed_s: float
    complete: bool
    case_dir: Path
    test_file: Path
    command: str


class _CaseDumper(yaml.SafeDumper):
    """Multi-line strings (code, YAML answers) as ``|`` blocks, as a person writes case.yaml."""


_CaseDumper.add_representer(
    str,
    lambda dumper, data: dumper.represent_scalar(
        "tag:yaml.org,2002:str", data, style="|" if "\n" in data else None
    ),
)


class _OutOfBudget(Exception):
    """The time budget is spent: the search ends with the best variant so far."""


Progress = Callable[[str, Size], None]


def _violated(row: dict[str, Any]) -> set[str]:
    return {v["rule"] for v in row["violations"]}


# ------------------------------------------------------------------------- expected answer


def decoded_answer(case: Case, transcript: Transcript) -> dict[str, str | None] | None:
    """The answer a correct SUT shows for ``transcript`` (text, and code or yaml), decoded by
    the grader (:func:`~streambench.grade.expect.recorded_answer`); None when it cannot be."""
    answer = recorded_answer(transcript, case.mode, case.expression)
    if answer.text is None:
        return None
    if case.mode == "job_code":
        return {"text": answer.text, "code": answer.code}
    if case.mode == "workflow":
        return {"text": answer.text, "yaml": answer.code}
    return {"text": answer.text}


def _case_expect(case: Case) -> dict[str, str | None]:
    expect: dict[str, str | None] = {"text": case.expect_text}
    if case.expect_code is not None:
        expect["code"] = case.expect_code
    if case.expect_yaml is not None:
        expect["yaml"] = case.expect_yaml
    return expect


def _answer_source(case: Case, transcripts: Sequence[Transcript]) -> int | None:
    """Which upstream recording the case's expectation was decoded from (None: none of them,
    the expectation is kept as written)."""
    expect = _case_expect(case)
    for i, transcript in enumerate(transcripts):
        answer = decoded_answer(case, transcript)
        if answer is not None and all(answer.get(k) == v for k, v in expect.items()):
            return i
    return None


# --------------------------------------------------------------------------- delta debugging


def ddmin(items: list[T], fails: Callable[[list[T]], bool]) -> list[T]:
    """Zeller's delta debugging: a 1-minimal sublist of ``items`` (order kept) that still
    ``fails``; ``items`` itself is assumed to fail. The empty list is tried first."""
    if not items or fails([]):
        return []
    n = 2
    while len(items) >= 2:
        size = math.ceil(len(items) / n)
        parts = [items[i : i + size] for i in range(0, len(items), size)]
        for i in range(len(parts)):
            complement = [x for j, part in enumerate(parts) if j != i for x in part]
            if fails(complement):
                items, n = complement, max(n - 1, 2)
                break
        else:
            for part in parts:
                if len(part) < len(items) and fails(part):
                    items, n = part, 2
                    break
            else:
                if n >= len(items):
                    break
                n = min(len(items), n * 2)
    if len(items) == 1 and fails([]):
        return []
    return items


# ------------------------------------------------------------------------------ the search


def _move_fault(spec: str, pos: int) -> str:
    fault = parse_fault(spec)
    return re.sub(rf"@{fault.at}=\d+", f"@{fault.at}={pos}", spec, count=1)


def _earlier_positions(pos: int) -> list[int]:
    spread = {pos * k // _EARLY_POSITIONS for k in range(_EARLY_POSITIONS)}
    return sorted(set(range(min(pos, _EARLY_POSITIONS))) | spread)


def _transport_part(chunking: str) -> str:
    return parse_chunking(chunking).transport.spec


def _content_part(chunking: str) -> str | None:
    content = [t for t in chunking.split("+") if t.strip().startswith("deltas")]
    return content[0].strip() if content else None


def _joined(content: str | None, transport: str) -> str:
    if content is None:
        return transport
    return content if transport == "events" else f"{content}+{transport}"


class _Search:
    """One shrink: the candidates tried (cached by content and plan), the best so far, the
    budget; each phase method takes the current variant and returns a smaller failing one."""

    def __init__(
        self,
        case: Case,
        spec: RunSpec,
        rule: str,
        budget_s: float,
        work_dir: Path,
        on_progress: Progress | None,
    ) -> None:
        self.case, self.spec, self.rule = case, spec, rule
        self.deadline = time.monotonic() + budget_s
        self.work_dir = work_dir
        self.on_progress = on_progress
        self.runs = 0
        self.allowed: set[str] = set()
        self.seen: dict[str, bool] = {}
        self.answer_from: int | None = None
        self.host: Any = None
        self.best: Variant | None = None
        self.step = "start"

    def size(self, v: Variant) -> Size:
        plans = [
            build_plan(t, v.chunking, _latency(v.latency), () if i else v.faults, self.spec.seed)
            for i, t in enumerate(v.transcripts)
        ]
        return Size(
            events=sum(len(p.timeline) for p in plans),
            chars=sum(len(text) for p in plans for _, _, text in p.content_timeline),
            cuts=sum(max(0, len(p.chunks) - 1) for p in plans),
            faults=len(v.faults),
        )

    def write(self, v: Variant, folder: Path, extra: dict[str, Any] | None = None) -> Path:
        """The variant as a case folder: upstream-N.yaml files and case.yaml."""
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for i, t in enumerate(v.transcripts, start=1):
            name = f"upstream-{i}.yaml" if len(v.transcripts) > 1 else "upstream.yaml"
            save(t, folder / name)
            names.append(name)
        surface, expected = surface_keys(self.case, folder)  # the HTTP surface and turns
        doc: dict[str, Any] = {
            "name": self.case.name,
            "mode": self.case.mode,
            "request": self.case.request,
            "upstream": names,
            **surface,
            "expect": {k: val for k, val in v.expect.items() if val is not None} | expected,
        }
        if extra:
            doc.update(extra)
        text = yaml.dump(doc, Dumper=_CaseDumper, sort_keys=False, allow_unicode=True, width=100)
        atomic_write_text(folder / "case.yaml", text)
        return folder / "case.yaml"

    def run(self, v: Variant, folder: Path) -> dict[str, Any]:
        path = self.write(v, folder)
        spec = replace(
            self.spec, case_path=str(path), chunking=v.chunking, latency=v.latency, faults=v.faults
        )
        return run_one(spec, self.host)

    def fails(self, v: Variant) -> bool:
        """Whether ``v`` still breaks the rule (and nothing the original did not)."""
        bodies = [t.response.body.decode("utf-8", "replace") for t in v.transcripts]
        key = json.dumps([bodies, v.chunking, v.latency, list(v.faults)])
        if key in self.seen:
            return self.seen[key]
        if time.monotonic() > self.deadline:
            raise _OutOfBudget
        self.runs += 1
        try:
            broken = _violated(self.run(v, self.work_dir / "candidate"))
        except StreambenchError:
            broken = set()  # e.g. a fault position past the reduced stream's end
        result = self.rule in broken and broken <= self.allowed
        self.seen[key] = result
        if result:  # every failing candidate is the smallest so far: the budget may end here
            self.best = v
            if self.on_progress is not None:
                self.on_progress(self.step, self.size(v))
        return result

    def keep(self, current: Variant, candidate: Variant) -> Variant:
        return candidate if self.fails(candidate) else current

    # ------------------------------------------------------------------------ the phases

    def faults(self, v: Variant) -> Variant:
        for spec in reversed(v.faults):
            v = self.keep(v, replace(v, faults=tuple(f for f in v.faults if f != spec)))
        for n, spec in enumerate(v.faults):
            fault = parse_fault(spec)
            if fault.at == "start":
                continue
            for pos in _earlier_positions(fault.pos):
                faults = (*v.faults[:n], _move_fault(spec, pos), *v.faults[n + 1 :])
                moved = replace(v, faults=faults)
                if self.fails(moved):
                    v = moved
                    break
        return v

    def latency(self, v: Variant) -> Variant:
        if v.latency == NO_LATENCY:
            return v
        return self.keep(v, replace(v, latency=NO_LATENCY))

    def bake(self, v: Variant) -> Variant:
        """Write the content re-split into the transcripts' events, so content can shrink."""
        content = _content_part(v.chunking)
        if content is None:
            return v
        transport = _transport_part(v.chunking)
        baked = tuple(resplit_transcript(t, v.chunking, self.spec.seed) for t in v.transcripts)
        return self.keep(v, replace(v, transcripts=baked, chunking=transport))

    def _with(self, v: Variant, k: int, texts: dict[int, str | None]) -> Variant | None:
        """``v`` with transcript ``k``'s content deltas replaced; None if the answer breaks."""
        t = v.transcripts[k]
        api = t.meta.api
        frames = frames_of(api, t.response.body)
        new_frames, kept = with_contents(api, frames, texts)
        response = replace(t.response, body=b"".join(f.raw for f in new_frames), chunks=None)
        reduced = replace(t, response=response, path=None)
        transcripts = (*v.transcripts[:k], reduced, *v.transcripts[k + 1 :])
        expect = v.expect
        if self.answer_from == k:
            answer = decoded_answer(self.case, reduced)
            if answer is None:
                return None
            expect = answer
        elif self.case.mode in SHAPES and decoded_answer(self.case, reduced) is None:
            return None
        faults = v.faults
        if k == 0 and faults:
            faults = _remap_faults(faults, frames, new_frames, kept)
        return replace(v, transcripts=transcripts, expect=expect, faults=faults)

    def _try(self, v: Variant, k: int, texts: dict[int, str | None]) -> bool:
        candidate = self._with(v, k, texts)
        return candidate is not None and self.fails(candidate)

    def content(self, v: Variant) -> Variant:
        for k in range(len(v.transcripts)):
            v = self._drop_deltas(v, k)
            if self.case.mode in SHAPES:
                v = self._drop_json_values(v, k)
            v = self._drop_chars(v, k)
            v = self._merge_deltas(v, k)
        return v

    def _drop_json_values(self, v: Variant, k: int) -> Variant:
        """Whole objects and arrays of a JSON answer (an edit, say), largest first, with their
        comma: one step that character deletion could only reach through invalid JSON."""
        tried: set[str] = set()
        while True:
            deltas = self._deltas(v, k)
            answer = "".join(text for _, text in deltas)
            for start, end in sorted(json_spans(answer), key=lambda s: (s[0] - s[1], s[0])):
                if answer[end : end + 1] == ",":
                    end += 1
                elif answer[start - 1 : start] == ",":
                    start -= 1
                texts = _without(deltas, range(start, end))
                key = answer[:start] + answer[end:]
                if key in tried:
                    continue
                tried.add(key)
                if self._try(v, k, texts):
                    v = self._accept(v, k, texts)
                    break
            else:
                return v

    def _deltas(self, v: Variant, k: int) -> list[tuple[int, str]]:
        t = v.transcripts[k]
        found = content_deltas(t.meta.api, frames_of(t.meta.api, t.response.body))
        return [(i, text) for i, _, text in found]

    def _accept(self, v: Variant, k: int, texts: dict[int, str | None]) -> Variant:
        candidate = self._with(v, k, texts)
        assert candidate is not None
        return candidate

    def _drop_deltas(self, v: Variant, k: int) -> Variant:
        deltas = self._deltas(v, k)
        everything = [i for i, _ in deltas]

        def texts(kept: list[int]) -> dict[int, str | None]:
            return {i: text if i in kept else None for i, text in deltas}

        kept = ddmin(everything, lambda sub: self._try(v, k, texts(sub)))
        return v if kept == everything else self._accept(v, k, texts(kept))

    def _drop_chars(self, v: Variant, k: int) -> Variant:
        deltas = self._deltas(v, k)
        chars = [(n, c) for n, (_, text) in enumerate(deltas) for c in range(len(text))]

        def texts(kept: list[tuple[int, int]]) -> dict[int, str | None]:
            pieces: dict[int, list[str]] = {}
            for n, c in kept:
                pieces.setdefault(n, []).append(deltas[n][1][c])
            return {i: "".join(pieces.get(n, [])) or None for n, (i, _) in enumerate(deltas)}

        kept = ddmin(chars, lambda sub: self._try(v, k, texts(sub)))
        return v if kept == chars else self._accept(v, k, texts(kept))

    def _merge_deltas(self, v: Variant, k: int) -> Variant:
        deltas = self._deltas(v, k)
        bounds = list(range(1, len(deltas)))  # bound b: between delta b-1 and delta b

        def texts(kept: list[int]) -> dict[int, str | None]:
            out: dict[int, str | None] = {}
            head = deltas[0][0] if deltas else 0
            for n, (i, text) in enumerate(deltas):
                if n and n not in kept:
                    out[head] = (out[head] or "") + text
                    out[i] = None
                else:
                    head, out[i] = i, text
            return out

        kept = ddmin(bounds, lambda sub: self._try(v, k, texts(sub)))
        return v if kept == bounds else self._accept(v, k, texts(kept))

    def cuts(self, v: Variant) -> Variant:
        content = _content_part(v.chunking)
        transport = _transport_part(v.chunking)
        if transport == "coalesce":
            return v
        none = replace(v, chunking=_joined(content, "coalesce"))
        if self.fails(none):
            return self.keep(v, none)
        plan = build_plan(
            v.transcripts[0], v.chunking, _latency(v.latency), v.faults, self.spec.seed
        )
        ends = list(itertools.accumulate(len(c.data) for c in plan.chunks))[:-1]
        explicit = replace(v, chunking=_joined(content, f"cuts:{','.join(map(str, ends))}"))
        if not ends or not self.fails(explicit):
            return v

        def with_cuts(kept: list[int]) -> Variant:
            spec = f"cuts:{','.join(map(str, kept))}" if kept else "coalesce"
            return replace(v, chunking=_joined(content, spec))

        kept = ddmin(ends, lambda sub: self.fails(with_cuts(sub)))
        return self.keep(v, with_cuts(kept))

    def explicit_content(self, v: Variant) -> Variant:
        """One upstream recording with one content stream: its content back in one event,
        the delta boundaries written in the plan as ``deltas:at=...`` (if it still fails)."""
        if len(v.transcripts) != 1 or _content_part(v.chunking) is not None:
            return v
        transport = _transport_part(v.chunking)
        t = v.transcripts[0]
        deltas = content_deltas(t.meta.api, frames_of(t.meta.api, t.response.body))
        if len(deltas) < 2 or len({slot for _, slot, _ in deltas}) != 1:
            return v
        if transport.startswith("cuts:") or any(parse_fault(f).at != "start" for f in v.faults):
            return v  # byte offsets and event positions were measured on the events as they are
        merged: dict[int, str | None] = {i: None for i, _, _ in deltas}
        merged[deltas[0][0]] = "".join(text for _, _, text in deltas)
        bounds = [0]
        for _, _, text in deltas[:-1]:
            bounds.append(bounds[-1] + len(text))
        candidate = self._with(v, 0, merged)
        if candidate is None:
            return v
        content = "deltas:at=" + "/".join(map(str, bounds[1:]))
        return self.keep(v, replace(candidate, chunking=_joined(content, transport)))


def _without(deltas: list[tuple[int, str]], removed: range) -> dict[int, str | None]:
    """Delta texts with the answer's characters at ``removed`` deleted (empty deltas dropped)."""
    texts: dict[int, str | None] = {}
    at = 0
    for i, text in deltas:
        kept = "".join(ch for j, ch in enumerate(text, start=at) if j not in removed)
        texts[i] = kept or None
        at += len(text)
    return texts


def _latency(spec: str) -> str | None:
    return None if spec == DEFAULT_LATENCY else spec


def _remap_faults(
    faults: tuple[str, ...], old: list[Any], new: list[Any], kept: list[int]
) -> tuple[str, ...]:
    """Keep an ``event=N`` fault before the same event when content events before it were
    dropped (``kept``: the old index of each new frame)."""
    old_events = [i for i, f in enumerate(old) if f.event is not None]
    out = []
    for spec in faults:
        fault = parse_fault(spec)
        if fault.at != "event" or fault.pos >= len(old_events):
            out.append(spec)
            continue
        frame = old_events[fault.pos]
        pos = sum(1 for j, f in zip(kept, new, strict=True) if j < frame and f.event is not None)
        out.append(_move_fault(spec, pos))
    return tuple(out)


# ------------------------------------------------------------------------------- the output

_TEST_FILE = '''"""Regression test written by `streambench shrink`: {rule} on {case}.

Shrunk from the run {source}
({sizes}).
It fails while the SUT breaks {rule} on this stream and passes once the bug is fixed;
point it at another build with STREAMBENCH_SUT=module:app.
"""

import os

import pytest

SUT = os.environ.get("STREAMBENCH_SUT", {sut})


@pytest.mark.streambench(
    cases=["."],
    chunkings=[{chunking}],
    latencies=[{latency}],
    faults=[{faults}],
    seeds=[{seed}],
)
def test_{function}(streambench):
    row = streambench.run(SUT, dialect={dialect})
    broken = [v["message"] for v in row["violations"] if v["rule"] == {rule_literal}]
    assert not broken, broken
'''


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "case"


def reproduce_command(case_dir: Path, spec: RunSpec, v: Variant) -> str:
    """The one ``streambench run`` line that replays the shrunk variant."""
    words = ["streambench", "run", "--case", str(case_dir), "--sut", spec.sut]
    words += ["--chunking", v.chunking, "--latency", v.latency, "--seed", str(spec.seed)]
    if spec.dialect != "streambench":
        words += ["--dialect", spec.dialect]
    if v.faults:
        words += ["--fault", ";".join(v.faults)]
    return shlex.join(words)


def shrink_run(
    spec: RunSpec,
    rule: str,
    out_dir: str | Path,
    budget_s: float = DEFAULT_BUDGET_S,
    on_progress: Progress | None = None,
    source: str = "",
) -> ShrinkResult:
    """Shrink the run ``spec`` (which must fail with ``rule``) into a case folder under
    ``out_dir``: the minimal transcripts, case.yaml with the explicit plan and the rule, and a
    pytest file. Raises ConfigError when the run does not fail with ``rule``."""
    started = time.monotonic()
    case = load_case(spec.case_path)
    transcripts = tuple(load_inputs(case.upstream))
    with tempfile.TemporaryDirectory(prefix="streambench-shrink-") as tmp:
        search = _Search(case, spec, rule, budget_s, Path(tmp), on_progress)
        sut = parse_sut(spec.sut)
        with replay_host(0) if sut.over_http else nullcontext() as host:
            search.host = host
            expect = _case_expect(case)
            start = Variant(transcripts, spec.chunking, spec.latency, spec.faults, expect)
            original = _violated(search.run(start, Path(tmp) / "original"))
            if rule not in original:
                broke = ", ".join(sorted(original)) or "no rule"
                raise ConfigError(
                    f"{source or spec.case_path}: re-run breaks {broke}, not {rule!r}: "
                    "nothing to shrink (is the SUT the same as when the results were written?)"
                )
            search.allowed = original
            search.answer_from = _answer_source(case, transcripts)
            before = search.size(start)
            v, complete = start, True
            try:
                for step, phase in (
                    ("fault", search.faults),
                    ("latency", search.latency),
                    ("content", search.bake),
                    ("content", search.content),
                    ("cuts", search.cuts),
                    ("content", search.explicit_content),
                ):
                    search.step = step
                    v = phase(v)
            except _OutOfBudget:
                v, complete = search.best or v, False
    case_dir = Path(out_dir) / _slug(f"{case.name}-{rule}")
    after = search.size(v)
    test_file = _write_case(search, spec, rule, v, case_dir, source, f"{before} -> {after}")
    command = reproduce_command(case_dir, spec, v)
    elapsed_s = time.monotonic() - started
    return ShrinkResult(
        rule,
        source,
        before,
        after,
        v,
        search.runs,
        elapsed_s,
        complete,
        case_dir,
        test_file,
        command,
    )


def _write_case(
    search: _Search,
    spec: RunSpec,
    rule: str,
    v: Variant,
    case_dir: Path,
    source: str,
    sizes: str,
) -> Path:
    """case.yaml (with the explicit plan under ``shrunk:``), the transcripts, the test file."""
    plan = {
        "rule": rule,
        "sut": spec.sut,
        "dialect": spec.dialect,
        "chunking": v.chunking,
        "latency": v.latency,
        "faults": list(v.faults),
        "seed": spec.seed,
        "from": source or spec.case_path,
    }
    notes = f"reduced by streambench shrink ({rule}): {sizes}"
    reduced = tuple(replace(t, meta=replace(t.meta, notes=notes)) for t in v.transcripts)
    search.write(replace(v, transcripts=reduced), case_dir, {"shrunk": plan})
    name = search.case.name
    test_file = case_dir / f"test_{_slug(name).replace('-', '_')}.py"
    text = _TEST_FILE.format(
        rule=rule,
        case=name,
        source=source or spec.case_path,
        sizes=sizes,
        sut=json.dumps(spec.sut),
        chunking=json.dumps(v.chunking),
        latency=json.dumps(None if v.latency == DEFAULT_LATENCY else v.latency).replace(
            "null", "None"
        ),
        faults=json.dumps(";".join(v.faults)),
        seed=spec.seed,
        function=_slug(f"no {rule}").replace("-", "_"),
        dialect=json.dumps(spec.dialect),
        rule_literal=json.dumps(rule),
    )
    atomic_write_text(test_file, text)
    return test_file


# ---------------------------------------------------------------------- picking the run


def _case_path(row: dict[str, Any], cases: Path) -> str:
    """The case file of a results row: its ``case_path`` column, else the case of that name
    under ``cases``."""
    path = row.get("case_path")
    if isinstance(path, str) and Path(path).exists():
        return path
    for file in case_files([cases]) if cases.exists() else []:
        if load_case(file).name == row["case"]:
            return str(file)
    raise ConfigError(
        f"run {run_id(row)!r}: case {row['case']!r} not found (no case_path in the results "
        f"and none of that name under {cases}/): name the cases folder",
        param="cases",
    )


def spec_of(row: dict[str, Any], cases: Path = Path("fixtures")) -> RunSpec:
    """The :class:`RunSpec` that re-runs a results row."""
    seed = int(row["seed"])
    faults = parse_faults(str(row["fault"] or ""))
    return RunSpec(
        _case_path(row, cases),
        str(row["sut"]),
        str(row["dialect"]),
        str(row["chunking"]),
        str(row["latency"]),
        faults,
        seed,
    )


def pick_run(
    rows: list[dict[str, Any]],
    run: str | None = None,
    case: str | None = None,
    rule: str | None = None,
    sut: str | None = None,
) -> tuple[dict[str, Any], str]:
    """The row to shrink and the rule it must keep breaking: ``run`` is a row number (0-based)
    or a run id (``case | sut | ...``); otherwise the first failing row matching ``case``,
    ``rule`` and ``sut``. The rule is ``rule``, else the row's first violation."""
    if run is not None:
        if run.isdigit() and int(run) < len(rows):
            chosen = [rows[int(run)]]
        else:
            chosen = [r for r in rows if run_id(r) == run]
        if not chosen:
            raise ConfigError(f"{run!r}: no such row number or run id in the results", param="run")
    else:
        chosen = [
            r
            for r in rows
            if r["violations"]
            and (case is None or r["case"] == case)
            and (sut is None or r["sut"] == sut)
            and (rule is None or rule in _violated(r))
        ]
        if not chosen:
            wanted = ", ".join(
                f"{k} {v!r}" for k, v in (("case", case), ("rule", rule), ("sut", sut)) if v
            )
            raise ConfigError(f"no failing run in the results{' with ' + wanted if wanted else ''}")
    row = chosen[0]
    slugs = [v["rule"] for v in row["violations"]]
    if rule is None:
        if not slugs:
            raise ConfigError(f"run {run_id(row)!r} has no violations: nothing to shrink")
        rule = slugs[0]
    elif rule not in slugs:
        raise ConfigError(f"run {run_id(row)!r} does not break {rule!r} (it breaks: {slugs})")
    return row, rule


def shrink_failures(
    rows: list[dict[str, Any]],
    out_dir: str | Path,
    budget_s: float = DEFAULT_BUDGET_S,
    cases: Path = Path("fixtures"),
    on_progress: Callable[[str, str, Size], None] | None = None,
) -> dict[tuple[str, str, str], ShrinkResult]:
    """Shrink the first failing run of every distinct (case, SUT, rule), each within
    ``budget_s``; keyed by (case, sut, rule)."""
    results: dict[tuple[str, str, str], ShrinkResult] = {}
    several_suts = len({row["sut"] for row in rows if row["violations"]}) > 1
    for row in rows:
        for rule in dict.fromkeys(v["rule"] for v in row["violations"]):
            if rule in CROSS_RUN_RULES:  # split-variance and the like: no single run shows it
                continue
            key = (str(row["case"]), str(row["sut"]), rule)
            if key in results:
                continue
            label = f"{row['case']} {rule}"
            progress = (lambda s, z, label=label: on_progress(label, s, z)) if on_progress else None
            where = Path(out_dir) / _slug(str(row["sut"])) if several_suts else Path(out_dir)
            results[key] = shrink_run(
                spec_of(row, cases), rule, where, budget_s, progress, source=run_id(row)
            )
    return results
