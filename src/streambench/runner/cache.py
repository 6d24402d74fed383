"""Parsed cases and transcripts kept across the runs of one process.

A matrix runs each case once per chunking, latency, fault and seed; parsing its YAML again
for every run (pure-Python ``safe_load``) cost more than the SUT's own work. Entries are
keyed by path and the files' size and modification time, so an edited file is read again.
Callers treat what they get as read-only (plans are built from it, never written into it).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

from streambench.runner.cases import Case, load_case
from streambench.transcript import Transcript, load_inputs

# Cases and transcript files held at once; a matrix's cases fit, a 100k-case sweep does not grow.
MAX_ENTRIES = 512


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, -1)  # the loader names the missing file
    return (stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=MAX_ENTRIES)
def _case(path: Path, stamp: tuple[int, int]) -> Case:
    return load_case(path)


@functools.lru_cache(maxsize=MAX_ENTRIES)
def _transcripts(paths: tuple[Path, ...], stamps: tuple[tuple[int, int], ...]) -> list[Transcript]:
    return load_inputs(paths)


def cached_case(path: str | Path) -> Case:
    """:func:`~streambench.runner.cases.load_case`, parsed once while the file is unchanged."""
    path = Path(path)
    file = path / "case.yaml" if path.is_dir() else path
    return _case(file, _stamp(file))


def cached_inputs(paths: Sequence[Path]) -> list[Transcript]:
    """:func:`~streambench.transcript.load_inputs` for a case's upstream files, parsed once
    while they are unchanged (a new list each time; the transcripts are shared)."""
    files = tuple(paths)
    return list(_transcripts(files, tuple(_stamp(p) for p in files)))
