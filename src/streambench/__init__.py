"""streambench: record, replay and grade LLM streaming (server-sent events) implementations.

The curated API; everything else lives in the stage packages (docs/architecture.md)::

    import streambench

    rows = streambench.run(cases=["fixtures"], chunkings=["events", "deltas:1"])
    plan = streambench.build_plan(streambench.load_transcript("x.yaml"), "bytes:3")
    with streambench.mock_upstream([plan]):
        ...  # every httpx (and SDK) request in the process gets the replay

Names other than the errors and the SSE codec load on first use, so ``import streambench``
stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streambench.errors import ConfigError, SpecError, StreambenchError, TranscriptError
from streambench.sse import SSEDecoder, SSEEvent, decode_all, encode

if TYPE_CHECKING:
    import pandas as pd

    from streambench.grade.dialects import register_dialect
    from streambench.grade.rules import register_rule
    from streambench.replay import ReplayPlan, ReplayTransport, build_plan, mock_upstream
    from streambench.runner.executors import Executor, Progress
    from streambench.runner.matrix import Matrix
    from streambench.transcript import Transcript, load_inputs

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "Matrix": "streambench.runner.matrix",
    "ReplayPlan": "streambench.replay",
    "ReplayTransport": "streambench.replay",
    "build_plan": "streambench.replay",
    "register_rule": "streambench.grade.rules",
    "mock_upstream": "streambench.replay",
    "Transcript": "streambench.transcript",
    "load_inputs": "streambench.transcript",
    "register_dialect": "streambench.grade.dialects",
}

__all__ = [
    "ConfigError",
    "Matrix",
    "ReplayPlan",
    "ReplayTransport",
    "SSEDecoder",
    "SSEEvent",
    "SpecError",
    "StreambenchError",
    "Transcript",
    "TranscriptError",
    "build_plan",
    "decode_all",
    "encode",
    "load_inputs",
    "load_transcript",
    "mock_upstream",
    "register_dialect",
    "register_rule",
    "run",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streambench' has no attribute {name!r}")


def load_transcript(path: str | Path) -> Transcript:
    """One transcript file (a transcript YAML, or the first streamed call of a cassette)."""
    from streambench.transcript import load_inputs

    found = load_inputs([path])
    if not found:
        raise TranscriptError(f"{path}: no streamed exchange in it")
    return found[0]


def run(
    matrix: Matrix | str | Path | None = None,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> pd.DataFrame:
    """Run a matrix and return its result rows, as ``streambench run`` does (the same defaults,
    the same rows as ``--format json``).

    ``matrix`` is a :class:`Matrix`, the path of a matrix YAML, or None for the defaults (the
    cases in ``./fixtures`` under six chunkings against the reference); ``overrides`` set
    Matrix fields on top (``cases=[...]``, ``suts=[...]``, ``chunkings=[...]``, ...).
    """
    from dataclasses import replace

    from streambench.runner.matrix import Matrix, build_matrix, run_matrix

    if isinstance(matrix, Matrix):
        built = replace(matrix, **{k: v for k, v in overrides.items() if v})
    else:
        built, _ = build_matrix(matrix, **overrides)
    return run_matrix(built, executor, progress)
