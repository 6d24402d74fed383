"""Short form of benchmarks/bench_grade.py: it runs and prints its figures (no timing check)."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT
from streambench.grade.client import consume
from streambench.grade.dialects import UIEvent


def test_bench_grade_prints_seconds_per_size() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_grade.py"), "--mb", "1",
         "--naive-mb", "0.2"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "grading 1 MB of streamed text:" in done.stdout and "target < 10 s" in done.stdout


def test_streamed_text_is_every_delta_in_order_between_reads() -> None:
    state = consume([UIEvent(0, "text", text="a"), UIEvent(1, "text", text="b")])
    assert state.streamed_text == "ab"
    state.feed(UIEvent(2, "text", text="c"))
    state.feed(UIEvent(3, "text", text=""))
    assert state.streamed_text == "abc" and state.streamed_text == "abc"
