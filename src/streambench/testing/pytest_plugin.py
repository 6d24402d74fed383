"""pytest plugin (entry point ``pytest11``): replay recorded streams into the code under test.

* the ``streambench`` fixture: ``with streambench.replay("x.yaml", chunking="bytes:3"):``
  makes every httpx request in the process receive the replay
  (:func:`streambench.replay.mock_upstream`);
  async tests that use the fixture run on looptime's virtual clock, so a 30 s stream takes ms;
* the marker ``@pytest.mark.streambench(cases=[...], chunkings=[...], latencies=[...],
  faults=[...], seeds=[...])`` parametrizes the test over that matrix; inside,
  ``streambench.replay()`` without arguments replays the current variant and
  ``streambench.case`` is its case.

Paths are relative to the test file. See docs/pytest-plugin.md.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from streambench.errors import ConfigError

if TYPE_CHECKING:
    from streambench.replay import ReplayPlan, ReplayTransport
    from streambench.runner.cases import Case
    from streambench.transcript import Transcript

# The replay stack is imported when a test uses it, not when pytest loads the plugin: every
# pytest run in an environment with streambench installed loads this module.

MARKER = "streambench"
_MATRIX_KEYS = ("cases", "chunkings", "latencies", "faults", "seeds")


@dataclass(frozen=True)
class Variant:
    """One cell of a marker's matrix: ``source`` is a case folder / case.yaml or a transcript."""

    source: Path
    chunking: str | None = None
    latency: str | None = None
    fault: str = ""
    seed: int = 0

    @property
    def id(self) -> str:
        parts = [self.source.stem if self.source.suffix else self.source.name]
        parts += [p for p in (self.chunking, self.latency, self.fault) if p]
        return "-".join([*parts, f"seed{self.seed}"])


def _case_path(source: Path) -> Path | None:
    """The case.yaml a source names (the file itself or inside the folder), else None."""
    if source.is_dir():
        return source / "case.yaml"
    return source if source.name == "case.yaml" else None


class Streambench:
    """What the ``streambench`` fixture gives a test."""

    def __init__(self, base_dir: Path, variant: Variant | None = None) -> None:
        self.base_dir = base_dir
        self.variant = variant

    @property
    def case(self) -> Case | None:
        """The current variant's case (None without the marker or for a bare transcript)."""
        from streambench.runner.cases import load_case

        path = _case_path(self.variant.source) if self.variant else None
        return load_case(path) if path else None

    def _transcripts(self, sources: Sequence[str | Path | Transcript]) -> list[Transcript]:
        from streambench.transcript import Transcript, load_inputs

        if not sources:
            if self.variant is None:
                raise ConfigError("streambench.replay(): name a transcript (no marker variant)")
            case = self.case
            sources = list(case.upstream) if case else [self.variant.source]
        loaded: list[Transcript] = []
        for source in sources:
            if isinstance(source, Transcript):
                loaded.append(source)
            else:
                loaded += load_inputs([self.base_dir / source])
        return loaded

    def plans(
        self,
        *sources: str | Path | Transcript,
        chunking: str | None = None,
        latency: str | None = None,
        fault: str | Sequence[str] | None = None,
        seed: int | None = None,
    ) -> list[ReplayPlan]:
        """The replay plans :meth:`replay` installs, one per transcript, in request order.
        Unset options come from the marker's variant, else from the replay's defaults. Faults
        hit the first transcript only (the first upstream call), as in ``streambench run``, so
        a failover case's second call replays clean."""
        from streambench.replay import build_plan

        variant = self.variant or Variant(Path("."))
        chunking = chunking if chunking is not None else variant.chunking
        latency = latency if latency is not None else variant.latency
        if fault is None:
            fault = variant.fault
        faults = [fault] if isinstance(fault, str) else list(fault)
        options: dict[str, Any] = {"seed": variant.seed if seed is None else seed}
        if chunking is not None:
            options["chunking"] = chunking
        if latency is not None:
            options["latency"] = latency
        first_faults = [f for f in faults if f]
        return [
            build_plan(t, faults=first_faults if i == 0 else [], **options)
            for i, t in enumerate(self._transcripts(sources))
        ]

    def run(
        self, sut: str, dialect: str = "streambench", profile: str | None = None
    ) -> dict[str, Any]:
        """Run the current variant's case against ``sut`` (``module:app``, ``reference`` or an
        http:// URL spec, as ``streambench run --sut``) and grade it: the result row, with its
        ``violations`` (``[{rule, message, at_ms}]``). Needs the marker and a case."""
        from streambench.runner.matrix import DEFAULT_LATENCY, RunSpec, parse_faults, run_one

        variant = self.variant
        path = _case_path(variant.source) if variant else None
        if variant is None or path is None:
            raise ConfigError("streambench.run(): needs a marker variant whose source is a case")
        spec = RunSpec(
            str(path),
            sut,
            dialect,
            variant.chunking or "events",
            variant.latency or DEFAULT_LATENCY,
            parse_faults(variant.fault),
            variant.seed,
            profile,
        )
        return run_one(spec)

    @contextmanager
    def replay(
        self,
        *sources: str | Path | Transcript,
        chunking: str | None = None,
        latency: str | None = None,
        fault: str | Sequence[str] | None = None,
        seed: int | None = None,
        speed: float = 1.0,
    ) -> Iterator[ReplayTransport]:
        """Answer every httpx request inside the block with the replays, in order (cycling);
        yields the :class:`~streambench.replay.ReplayTransport` (``.requests`` logs each call).

        Async clients wait on the loop's (virtual) clock; sync clients sleep for real, divided
        by ``speed`` (``math.inf``: no waiting)."""
        from streambench.replay import mock_upstream

        plans = self.plans(*sources, chunking=chunking, latency=latency, fault=fault, seed=seed)
        with mock_upstream(plans, speed=speed) as transport:
            yield transport


def _as_list(value: Any, default: list[Any]) -> list[Any]:
    if value is None:
        return default
    return [value] if isinstance(value, str | int) else list(value)


def variants(marker: pytest.Mark, base_dir: Path) -> list[Variant]:
    """The matrix of a ``@pytest.mark.streambench(...)`` marker, cases outermost."""
    unknown = sorted(set(marker.kwargs) - set(_MATRIX_KEYS))
    if unknown or marker.args:
        raise ConfigError(
            f"@pytest.mark.streambench: takes keyword lists {', '.join(_MATRIX_KEYS)}"
            + (f"; unknown {', '.join(unknown)}" if unknown else "")
        )
    cases = _as_list(marker.kwargs.get("cases"), [])
    if not cases:
        raise ConfigError("@pytest.mark.streambench: cases=[...] is required")
    sources: list[Path] = []
    for case in cases:
        path = base_dir / case
        if not path.exists():
            raise ConfigError(f"@pytest.mark.streambench: case {case!r}: no such file or folder")
        # A folder of cases expands to its */case.yaml folders.
        nested = sorted(p.parent for p in path.glob("*/case.yaml")) if path.is_dir() else []
        sources += nested if nested and not (path / "case.yaml").exists() else [path]
    matrix = itertools.product(
        sources,
        _as_list(marker.kwargs.get("chunkings"), [None]),
        _as_list(marker.kwargs.get("latencies"), [None]),
        _as_list(marker.kwargs.get("faults"), [""]),
        _as_list(marker.kwargs.get("seeds"), [0]),
    )
    return [Variant(*cell) for cell in matrix]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "streambench(cases, chunkings, latencies, faults, seeds): run the test once per replay "
        "variant; the streambench fixture replays the current one",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        return
    if MARKER not in metafunc.fixturenames:
        raise ConfigError(
            f"@pytest.mark.streambench on {metafunc.definition.name}: "
            "the test must take the streambench fixture"
        )
    cells = variants(marker, metafunc.definition.path.parent)
    metafunc.parametrize(MARKER, cells, indirect=True, ids=[cell.id for cell in cells])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Async tests replaying streams run on looptime's virtual clock unless they say otherwise.
    for item in items:
        if (
            isinstance(item, pytest.Function)
            and MARKER in item.fixturenames
            and inspect.iscoroutinefunction(item.obj)
            and item.get_closest_marker("looptime") is None
        ):
            item.add_marker(pytest.mark.looptime)


@pytest.fixture
def streambench(request: pytest.FixtureRequest) -> Streambench:
    """Replay recorded streams into httpx: ``with streambench.replay("x.yaml", fault=...):``."""
    variant = getattr(request, "param", None)
    return Streambench(request.path.parent, variant)
