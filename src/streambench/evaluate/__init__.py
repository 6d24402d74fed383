"""Evaluation: run SUTs over replay matrices; client model, metrics, rules, quality, reports.

Stages, one module each: ``sut`` (POST a case, get timed SSE bytes) -> ``dialects`` (SSE ->
UI events) -> ``client`` (UI state) -> ``upstream``/``metrics``/``rules``/``quality`` ->
``runner`` (rows) -> ``report`` / ``gate``.
"""

from __future__ import annotations

from streambench.evaluate.executors import Executor, LocalExecutor
from streambench.evaluate.runner import Matrix, RunSpec, run_matrix, run_one

__all__ = ["Executor", "LocalExecutor", "Matrix", "RunSpec", "run_matrix", "run_one"]
