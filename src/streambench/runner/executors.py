"""Where runs execute. One small interface, ``map(fn, specs, progress) -> rows``, so other
executors (Dask) plug in; rows come back in the order of ``specs`` whatever the executor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Protocol, TypeVar

S = TypeVar("S")
Row = dict[str, Any]
Progress = Callable[[int], None]  # called with how many runs just finished


class Executor(Protocol):
    def map(
        self, fn: Callable[[S], Row], specs: Sequence[S], progress: Progress | None = None
    ) -> list[Row]: ...


class LocalExecutor:
    """In this process (``jobs=1``) or on a pool of ``jobs`` local processes."""

    def __init__(self, jobs: int = 1) -> None:
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        self.jobs = jobs

    def map(
        self, fn: Callable[[S], Row], specs: Sequence[S], progress: Progress | None = None
    ) -> list[Row]:
        tick = progress or (lambda _n: None)
        if self.jobs == 1 or len(specs) < 2:
            rows = []
            for spec in specs:
                rows.append(fn(spec))
                tick(1)
            return rows
        # Batches amortise process hand-offs; several per worker keep the progress bar moving.
        size = max(1, len(specs) // (self.jobs * 8))
        batches = [list(specs[i : i + size]) for i in range(0, len(specs), size)]
        results: list[Row] = []
        with ProcessPoolExecutor(max_workers=self.jobs) as pool:
            for batch_rows in pool.map(_run_batch, [fn] * len(batches), batches):
                results.extend(batch_rows)
                tick(len(batch_rows))
        return results


def _run_batch(fn: Callable[[S], Row], specs: list[S]) -> list[Row]:
    return [fn(spec) for spec in specs]
