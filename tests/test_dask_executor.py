"""Scale-out: the same matrix on one process, two processes and a Dask cluster gives the same
rows (timings are virtual, seeds fix every random choice)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from distributed import LocalCluster

from streambench.cli import main
from streambench.errors import ConfigError
from streambench.runner.dask_executor import DaskExecutor, make_executor
from streambench.runner.executors import AUTO_RUNS_PER_WORKER, LocalExecutor, auto_jobs

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
CASES = ["job-unicode-escaped", "chat-hello"]


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    # one thread per worker: in-process SUTs patch httpx process-wide
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _run(out: Path, *extra: str) -> pd.DataFrame:
    args = ["run", "--out", str(out), "--format", "json", "--seed", "3"]
    for case in CASES:
        args += ["--case", str(FIXTURES / case)]
    args += ["--chunking", "events", "--chunking", "deltas:adversarial", *extra]
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code in (0, None)
    return pd.read_parquet(out / "results.parquet")


def test_jobs_1_jobs_2_and_dask_give_identical_rows(
    scheduler: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = _run(tmp_path / "one", "--jobs", "1")
    two = _run(tmp_path / "two", "--jobs", "2")
    dask = _run(tmp_path / "dask", "--executor", "dask", "--scheduler", scheduler)
    assert len(one) == len(CASES) * 2
    assert one["ttfc_ms"].notna().any()
    pd.testing.assert_frame_equal(one, two)
    pd.testing.assert_frame_equal(one, dask)


def test_dask_executor_keeps_spec_order_and_reports_progress(scheduler: str) -> None:
    ticks: list[int] = []
    rows = list(DaskExecutor(scheduler).map(_square_row, list(range(12)), ticks.append))
    assert [row["n"] for row in rows] == [n * n for n in range(12)]
    assert sum(ticks) == 12


def _square_row(n: int) -> dict[str, int]:
    return {"n": n * n}


def test_make_executor_choices() -> None:
    assert isinstance(make_executor("local", 2), LocalExecutor)
    assert isinstance(make_executor("dask", 2, "tcp://127.0.0.1:1"), DaskExecutor)
    with pytest.raises(ConfigError, match="executor: 'ray'"):
        make_executor("ray")
    with pytest.raises(ConfigError, match="scheduler: needs the dask executor"):
        make_executor("local", 1, "tcp://127.0.0.1:8786")


def test_unreachable_scheduler_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot connect"):
        list(DaskExecutor("tcp://127.0.0.1:9", connect_timeout_s=0.5).map(_square_row, [1]))


def test_runs_in_someone_elses_process_leave_its_collector_alone() -> None:
    before = gc.get_freeze_count()  # (a server a test ran here may have frozen its own)
    ref = weakref.ref(_Cycle())  # garbage only a collection frees
    frozen_during = list(LocalExecutor(1).map(lambda _: gc.get_freeze_count(), [0, 1]))
    assert frozen_during == [before, before] and gc.get_freeze_count() == before
    gc.collect()
    assert ref() is None


# A worker's life in a fresh interpreter: batch after batch, each leaving cyclic garbage behind
# (as runs do: tracebacks, closed loops, parsed frames). Prints the objects the collector
# tracks, frozen ones included, after batch 10 and after batch 60, and the freeze count.
WORKER_LIFE = """
import gc
from streambench.runner.executors import _run_batch
class Cycle:
    def __init__(self):
        self.me = self
def run(_):
    return [Cycle() for _ in range(300)] and None
def tracked():
    return len(gc.get_objects()) + gc.get_freeze_count()
for n in range(60):
    _run_batch(run, [0, 1, 2])
    if n == 9:
        after_10 = tracked()
print(after_10, tracked(), gc.get_freeze_count() > 0)
"""


def test_a_worker_freezes_its_start_up_once_and_its_batches_garbage_is_collected() -> None:
    # Freezing per batch froze the garbage left since the last collection: a 100k-run matrix
    # grew its worker to 650 MB.
    done = subprocess.run(
        [sys.executable, "-c", WORKER_LIFE], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    after_10, after_60, frozen = done.stdout.split()
    assert frozen == "True"  # the worker's start-up objects are out of the collector's view
    assert int(after_60) - int(after_10) < 2000  # 50 batches left 30k cycles behind: not kept


def test_the_console_scripts_runs_freeze_the_start_up_objects_once() -> None:
    script = (
        "import gc\n"
        "from streambench.runner.executors import LocalExecutor, claim_process\n"
        "claim_process()\n"
        "counts = [list(LocalExecutor(1).map(lambda _: gc.get_freeze_count(), [0, 1]))"
        " for _ in range(3)]\n"
        # (a frozen object freed by its reference count leaves the count: it can only fall)
        "print(counts[0][0] > 0 and max(max(c) for c in counts) <= counts[0][0])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr


class _Cycle:
    """An object that refers to itself: only the cycle collector frees it."""

    def __init__(self) -> None:
        self.me = self


def _pid(_: int) -> int:
    return os.getpid()


def test_jobs_0_runs_a_large_matrix_on_every_core_in_its_own_process_only() -> None:
    assert auto_jobs(10) == 1  # in someone else's process (this one): always in process
    assert set(LocalExecutor(0).map(_pid, list(range(AUTO_RUNS_PER_WORKER * 2)))) == {os.getpid()}
    script = (
        "import os\n"
        "from streambench.runner.executors import LocalExecutor, auto_jobs, claim_process, cores\n"
        "from tests.test_dask_executor import _pid\n"
        "claim_process()\n"
        "small = set(LocalExecutor(0).map(_pid, list(range(10))))\n"
        "large = set(LocalExecutor(0).map(_pid, list(range(128))))\n"
        "in_process = large == {os.getpid()}\n"
        "print(small == {os.getpid()}, auto_jobs(10**6) == cores(),"
        " in_process if cores() == 1 else not in_process and len(large) <= cores())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.stdout.split() == ["True", "True", "True"], done.stderr
