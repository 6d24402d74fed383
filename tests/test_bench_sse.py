"""benchmarks/bench_sse.py runs on a small input and prints the ratios (no timing check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_sse.py"


@pytest.mark.slow
def test_bench_sse_prints_speeds_and_ratios(corpus_dir: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--mb", "2", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode in (0, 1), run.stderr  # 1: a ratio below target, still a valid run
    for label in ("64 KiB", "64 B"):
        assert f"chunks of {label}" in run.stdout
    assert run.stdout.count("ratio vs ") == 2
    for name in ("streambench.sse", "httpx-sse", "anthropic", "launchdarkly"):
        assert run.stdout.count(name) >= 2
