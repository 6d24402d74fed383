"""Where runs execute. One small interface, ``map(fn, specs, progress) -> rows``, so other
executors (Dask) plug in; rows come back as runs finish, in the order of ``specs`` whatever
the executor, and are never all held here (a 100k-run matrix streams to disk)."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Protocol, TypeVar

S = TypeVar("S")
R = TypeVar("R")
Progress = Callable[[int], None]  # called with how many runs just finished
# Runs shipped to a worker at once: enough to amortise the hand-off, few enough that a batch's
# rows (~50 KB each) stay small in the parent.
MAX_BATCH = 64
# jobs=0 (auto): a worker per core once the matrix has this many runs per worker; a smaller
# one runs in process (starting the pool would cost more than it saves).
AUTO_RUNS_PER_WORKER = 64


class Executor(Protocol):
    def map(
        self, fn: Callable[[S], R], specs: Sequence[S], progress: Progress | None = None
    ) -> Iterator[R]: ...


def batches(specs: Sequence[S], workers: int) -> list[list[S]]:
    """``specs`` in batches: several per worker keep progress moving, none above MAX_BATCH."""
    size = min(MAX_BATCH, max(1, len(specs) // (workers * 8)))
    return [list(specs[i : i + size]) for i in range(0, len(specs), size)]


# Whether this process is streambench's own: the console script (``streambench ...``), not a
# library call or a test calling ``main([...])`` inside someone else's process. See claim_process.
_OWN_PROCESS = False
_FROZEN = False  # freeze_start_up ran here (gc.get_freeze_count walks every frozen object)


def claim_process() -> None:
    """Say this process is streambench's own (the console script's ``main()``): its in-process
    runs then freeze the start-up objects (:func:`freeze_start_up`)."""
    global _OWN_PROCESS
    _OWN_PROCESS = True


def freeze_start_up() -> None:
    """In a process streambench owns (``streambench run``, a pool worker): the objects alive
    now (imports, parsed cases) leave the cycle collector's view for the rest of the process
    (``gc.freeze``), so full collections during the runs do not walk them (a full collection
    over ~100k start-up objects cost ~70 ms every ~130 runs, 6% of a heavy matrix). Once per
    process: freezing again would also freeze the garbage made since, which then is never
    collected (freezing per batch grew a worker by ~6 MB per 1000 runs). A process that froze
    objects itself (the servers) is left as it is; in someone else's process (the pytest
    plugin, ``run_matrix``, a test calling ``main([...])``) runs never freeze."""
    global _FROZEN
    if not _FROZEN:
        _FROZEN = True
        if not gc.get_freeze_count():
            gc.freeze()


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_jobs(runs: int) -> int:
    """``jobs=0``'s processes for a matrix of ``runs``: in streambench's own process (see
    :func:`claim_process`), one per core, at most one per :data:`AUTO_RUNS_PER_WORKER` runs;
    1 (in this process) otherwise: forking someone else's process (a test calling
    ``main([...])``, with its threads) is theirs to ask for, with ``jobs`` > 1."""
    if not _OWN_PROCESS:
        return 1
    return max(1, min(cores(), runs // AUTO_RUNS_PER_WORKER))


class LocalExecutor:
    """In this process (``jobs=1``), on a pool of ``jobs`` local processes, or (``jobs=0``)
    on as many as :func:`auto_jobs` gives for the matrix."""

    def __init__(self, jobs: int = 1) -> None:
        if jobs < 0:
            raise ValueError("jobs must be 0 (one per core for a large matrix) or more")
        self.jobs = jobs

    def map(
        self, fn: Callable[[S], R], specs: Sequence[S], progress: Progress | None = None
    ) -> Iterator[R]:
        tick = progress or (lambda _n: None)
        jobs = self.jobs or auto_jobs(len(specs))
        if jobs == 1 or len(specs) < 2:
            if _OWN_PROCESS:
                freeze_start_up()
            for spec in specs:
                yield fn(spec)
                tick(1)
            return
        parts = batches(specs, jobs)
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for batch_rows in pool.map(_run_batch, [fn] * len(parts), parts):
                yield from batch_rows
                tick(len(batch_rows))


def _run_batch(fn: Callable[[S], R], specs: list[S]) -> list[R]:
    freeze_start_up()  # a worker is ours: its start-up objects (imports) once, at its first batch
    return [fn(spec) for spec in specs]
