"""Runs on a Dask distributed cluster (``streambench run --executor dask --scheduler ADDR``).

Each run is one task. In-process SUTs answer their upstream calls by patching httpx's
transports process-wide, so a worker must run one task at a time: start workers with
``--nthreads 1`` (the LocalCluster started without ``--scheduler`` does). Workers need
streambench installed and the case files at the same paths. Timings are virtual, so rows are
identical to a local run with the same seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from streambench.errors import ConfigError
from streambench.runner.executors import (
    Executor,
    LocalExecutor,
    Progress,
    _run_batch,
    batches,
    cores,
)

S = TypeVar("S")
R = TypeVar("R")
EXECUTORS = ("local", "dask")


class DaskExecutor:
    """On the cluster whose scheduler listens at ``scheduler`` (``tcp://host:8786``), or on a
    LocalCluster of ``workers`` single-threaded processes when no address is given.
    ``workers`` also sizes the batches of runs sent as one task."""

    def __init__(
        self, scheduler: str | None = None, workers: int = 2, connect_timeout_s: float = 10.0
    ) -> None:
        self.scheduler = scheduler
        self.workers = workers
        self.connect_timeout_s = connect_timeout_s

    def map(
        self, fn: Callable[[S], R], specs: Sequence[S], progress: Progress | None = None
    ) -> Iterator[R]:
        from distributed import Client, LocalCluster, as_completed

        if self.scheduler is None:
            cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, dashboard_address=None
            )
            client = Client(cluster)
        else:
            cluster = None
            try:
                client = Client(self.scheduler, timeout=self.connect_timeout_s)
            except OSError as exc:
                raise ConfigError(
                    f"{self.scheduler}: cannot connect: {exc}", param="scheduler"
                ) from None
        try:
            parts = batches(specs, self.workers)  # amortise Dask's per-task cost
            futures = client.map(_run_batch, [fn] * len(parts), parts, pure=False)
            index = {future.key: i for i, future in enumerate(futures)}
            done: dict[int, list[R]] = {}
            following = 0  # batches arrive in any order; rows leave in the specs' order
            for future, rows in as_completed(futures, with_results=True):
                done[index[future.key]] = rows
                if progress is not None:
                    progress(len(rows))
                while following in done:
                    yield from done.pop(following)
                    following += 1
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def make_executor(name: str, jobs: int = 1, scheduler: str | None = None) -> Executor:
    """``local`` (``jobs`` processes; 0: see :func:`~streambench.runner.executors.auto_jobs`)
    or ``dask`` (at ``scheduler``, else a LocalCluster of ``jobs`` workers; 0: one per core)."""
    if name == "local":
        if scheduler is not None:
            raise ConfigError("needs the dask executor", param="scheduler")
        return LocalExecutor(jobs)
    if name == "dask":
        return DaskExecutor(scheduler, workers=jobs or cores())
    raise ConfigError(f"{name!r}: expected one of {', '.join(EXECUTORS)}", param="executor")
