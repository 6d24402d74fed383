"""Throughput of one matrix on each executor: ``--jobs 1``, ``--jobs 2``, Dask (LocalCluster).

    python benchmarks/bench_executors.py [--cases DIR] [--seeds N] [--workers N]

Runs the bundled fixtures x 4 chunkings x N seeds against the reference on each executor,
prints runs/s and the speed-up over ``--jobs 1`` (the competitor), and checks that every
executor returned identical rows. Dask timings include starting its LocalCluster.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from streambench.runner.dask_executor import DaskExecutor
from streambench.runner.executors import Executor, LocalExecutor
from streambench.runner.matrix import Matrix, run_matrix

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CHUNKINGS = ["events", "bytes:16", "deltas:1", "deltas:adversarial"]


def timed(matrix: Matrix, executor: Executor) -> tuple[pd.DataFrame, float]:
    started = time.perf_counter()
    frame = run_matrix(matrix, executor=executor)
    return frame, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=FIXTURES)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    matrix = Matrix(cases=[str(args.cases)], chunkings=CHUNKINGS, seeds=list(range(args.seeds)))
    n_runs = len(matrix.specs())
    executors: list[tuple[str, Executor]] = [
        ("--jobs 1", LocalExecutor(1)),
        (f"--jobs {args.workers}", LocalExecutor(args.workers)),
        (f"dask ({args.workers} workers)", DaskExecutor(None, workers=args.workers)),
    ]
    baseline_s = None
    reference = None
    print(f"{n_runs} runs per executor")
    for name, executor in executors:
        frame, elapsed_s = timed(matrix, executor)
        baseline_s = baseline_s or elapsed_s
        if reference is None:
            reference = frame
        identical = frame.equals(reference)
        print(
            f"{name:<22} {elapsed_s:7.2f} s  {n_runs / elapsed_s:7.1f} runs/s  "
            f"x{baseline_s / elapsed_s:4.2f} vs --jobs 1  identical rows: {identical}"
        )


if __name__ == "__main__":
    main()
