"""Running a matrix: cases, the matrix of runs, one run end to end, and where runs execute.

A run goes case -> replay plans (``streambench.replay``) -> SUT (``streambench.suts``) -> grading
(``streambench.grade``) -> one result row; ``streambench.report`` writes the rows out.
"""

from __future__ import annotations

from streambench.runner.executors import Executor, LocalExecutor
from streambench.runner.matrix import Matrix, RunSpec, run_matrix, run_one

__all__ = ["Executor", "LocalExecutor", "Matrix", "RunSpec", "run_matrix", "run_one"]
