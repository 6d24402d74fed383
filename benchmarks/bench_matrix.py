"""The whole pipeline: modelled stream time / wall time for a matrix, with the cost per stage.

    python benchmarks/bench_matrix.py [--matrix default|heavy|both] [--limit N] [--repeat N]

``default`` is what ``streambench run`` runs (fixtures x the six default chunkings, plus the
default extra cells: a second seed and a mid-stream fault);
``heavy`` is fixtures x ``tokens:rate=50`` x ``random:min=1,max=64`` x ``--seeds`` seeds.
Each matrix runs in process with one job (``--jobs 1``); the ratio is the rows' summed
``total_ms`` (what the streams take in real time) over the median wall time of ``--repeat``
runs (CPU time beside it: steadier on a busy machine). A profiled run then splits the CPU time
per stage, by the file each function lives in. The SUT's web framework (starlette, FastAPI) is
the SUT's own work. Builtins, the standard library outside asyncio, the shared answer parser
and the client libraries (httpx, anyio, the provider SDKs) are charged to their callers'
stages, so the SUT's own httpx client is the SUT's work and the httpx objects the replay
transport builds are the transport's. The shares are scaled to the median CPU time; harness
overhead is everything but the SUT's own work, as a multiple of it.

Outside the per-run figures: the whole ``streambench run`` process of the default
matrix (``--limit``'s cases; wall median of ``--repeat``, its CPU beside), split into start-up
(a fresh interpreter importing exactly the modules ``streambench run`` has loaded once its
first run is done: README, "Start-up") and what follows it (case checks, the runs, reports,
summary); and, per matrix, the reports and terminal summary as ``streambench run`` writes
them (rows spooled to disk, the five files, the tables), timed once.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from rich.console import Console

from streambench.cli.evaluate import summary_tables, violations_table
from streambench.report.files import write_streamed
from streambench.runner.executors import claim_process
from streambench.runner.matrix import Matrix, iter_matrix, run_matrix

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
# Stage of a profiled function, by the first fragment of its file path that matches. The SUT's
# web framework is the SUT's own work: a deployed backend runs it too.
STAGES = (
    ("SUT's own work", ("streambench/reference/", "tests/suts/", "starlette/", "fastapi/")),
    ("virtual-time loop", ("streambench/replay/vtime", "looptime", "asyncio/", "selectors")),
    (
        "replay transport",
        (
            "streambench/replay/",
            "streambench/_pacing",
            "streambench/providers/",
            "streambench/sse/_e",
        ),
    ),
    ("ASGI/httpx plumbing", ("streambench/suts",)),
    ("client model + rules", ("streambench/grade/", "streambench/sse/", "numpy")),
    ("case loading", ("yaml", "streambench/runner/ca", "streambench/transcript/")),
    ("reports", ("streambench/report/", "pandas", "pyarrow")),
)
OTHER = "runner, other"
# Code that works for whoever calls it: builtins, the standard library outside asyncio, the
# answer parser both the SUT and the grader use, and the client libraries (httpx, anyio, the
# provider SDKs). Its time goes to its callers' stages, so the SUT's own httpx client is the
# SUT's work, and the httpx calls inside the replay transport are the transport's.
SHARED_PREFIXES = ("~", "<", sysconfig.get_paths()["stdlib"])
SHARED_FILES = (
    "streambench/answer.py",
    "site-packages/httpx/",
    "site-packages/httpcore/",
    "site-packages/anyio/",
    "site-packages/sniffio/",
    "site-packages/anthropic/",
    "site-packages/openai/",
    "site-packages/google/",
)
# `streambench run` on the given cases, printing the modules loaded once its first run is done.
FIRST_RUN_MODULES = """
import json, sys
import streambench.runner.matrix as matrix
from streambench.cli import main
run_one = matrix.run_one
def first(spec, *args, **kwargs):
    matrix.run_one = run_one
    row = run_one(spec, *args, **kwargs)
    print(json.dumps(sorted(sys.modules)), file=sys.__stderr__, flush=True)
    return row
matrix.run_one = first
main(sys.argv[1:])
"""
# A fresh interpreter importing those modules (a few load only as part of another).
IMPORT_ALL = """
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        pass
"""


def matrices(which: str, seeds: int, cases: list[str]) -> dict[str, Matrix]:
    both = {
        "default": Matrix(cases=cases),
        "heavy": Matrix(
            cases=cases,
            chunkings=["random:min=1,max=64"],
            latencies=["tokens:rate=50"],
            seeds=list(range(seeds)),
        ),
    }
    return both if which == "both" else {which: both[which]}


def stage_of(filename: str) -> str | None:
    """The stage a file's code belongs to; None for shared code (charged to its callers)."""
    path = filename.replace("\\", "/")
    for stage, fragments in STAGES:
        if any(f in path for f in fragments):
            return stage
    shared = path.startswith(SHARED_PREFIXES) or any(f in path for f in SHARED_FILES)
    return None if shared else OTHER


def stage_seconds(stats: pstats.Stats) -> dict[str, float]:
    """Own time per stage; shared code's time goes to the stages of its callers, by how much
    of its time each caller's calls took (through chains of shared callers too)."""
    entries = stats.stats  # type: ignore[attr-defined]
    memo: dict[tuple[str, int, str], dict[str, float]] = {}

    def owners(func: tuple[str, int, str]) -> dict[str, float]:
        """The stages ``func`` works for, as shares summing to 1."""
        if func in memo:
            return memo[func]
        memo[func] = {OTHER: 1.0}  # a cycle of shared callers stays unattributed
        stage = stage_of(func[0])
        callers = entries[func][4] if func in entries else {}
        total = sum(ct for _, _, _, ct in callers.values())
        if stage is not None or total <= 0:
            memo[func] = {stage or OTHER: 1.0}
            return memo[func]
        shares: dict[str, float] = defaultdict(float)
        for caller, (_, _, _, ct) in callers.items():
            for owner, share in owners(caller).items():
                shares[owner] += share * ct / total
        memo[func] = shares
        return shares

    seconds: dict[str, float] = defaultdict(float)
    for func, (_, _, own_s, _, callers) in entries.items():
        if stage_of(func[0]) is not None or not callers:
            seconds[stage_of(func[0]) or OTHER] += own_s
            continue
        for caller, (_, _, share_s, _) in callers.items():
            for owner, share in owners(caller).items():
                seconds[owner] += share_s * share
    return seconds


def _fresh(argv: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of a fresh interpreter running ``argv``, from the repo."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv],
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    wall_s = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall_s, cpu_s, done.stderr


def whole_process(cases: list[str], repeat: int) -> None:
    """The default matrix as a fresh ``streambench run`` process: start-up and the rest."""
    with tempfile.TemporaryDirectory() as out:
        run_args = ["run", *(a for c in cases for a in ("--case", c)), "--out", out]
        _, _, err = _fresh(["-c", FIRST_RUN_MODULES, *run_args])
        modules = [m for m in json.loads(err.splitlines()[0]) if m != "__main__"]
        imports = ["-c", IMPORT_ALL, *modules]
        starts = [_fresh(imports)[:2] for _ in range(repeat)]
        main = ["-c", "from streambench.cli import main; main()", *run_args]
        wholes = [_fresh(main)[:2] for _ in range(repeat)]
    start_s, start_cpu = (statistics.median(x) for x in zip(*starts, strict=True))
    whole_s, whole_cpu = (statistics.median(x) for x in zip(*wholes, strict=True))
    print(
        f"streambench run, default matrix, fresh process: {whole_s:.3f} s wall"
        f" ({whole_cpu:.3f} s CPU; median of {repeat})"
    )
    print(
        f"  start-up (interpreter + the {len(modules)} modules loaded by the end of the first run):"
        f" {start_s:.3f} s wall ({start_cpu:.3f} s CPU);"
        f" after start-up: {whole_s - start_s:.3f} s wall ({whole_cpu - start_cpu:.3f} s CPU)"
    )


def reports_s(matrix: Matrix) -> tuple[float, float]:
    """(wall s, CPU s) to write the reports and the terminal summary as ``streambench run``
    does: the rows spooled to disk, the five files written from the spool, the tables."""
    rows = list(iter_matrix(matrix))
    console = Console(file=io.StringIO(), width=120)
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), time.process_time()
        written = write_streamed(rows, out, matrix.profile).write_reports()
        for table in summary_tables(written.overview):
            console.print(table)
        if written.n_violations:
            console.print(violations_table(written.violations, total=written.n_violations))
        return time.perf_counter() - t0, time.process_time() - c0


def bench(name: str, matrix: Matrix, repeat: int) -> None:
    frame = run_matrix(matrix)  # warm: imports, caches of parsed cases
    runs = len(frame)
    modelled_s = float(frame["total_ms"].sum()) / 1000
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        run_matrix(matrix)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    wall_s, cpu_s = statistics.median(walls), statistics.median(cpus)
    profile = cProfile.Profile(time.process_time)  # CPU time: other processes do not count
    profile.runcall(run_matrix, matrix)
    seconds = stage_seconds(pstats.Stats(profile))
    total = sum(seconds.values())
    sut_share = seconds["SUT's own work"] / total
    report_s, report_cpu = reports_s(matrix)

    print(f"{name}: {runs} runs, modelled {modelled_s:,.1f} s of streaming")
    print(
        f"  wall {wall_s:.3f} s (median of {repeat}; spread {min(walls):.3f}-{max(walls):.3f})"
        f"  ratio {modelled_s / wall_s:,.0f}x   cpu {cpu_s:.3f} s  ratio {modelled_s / cpu_s:,.0f}x"
    )
    print(
        f"  per run {wall_s / runs * 1000:.2f} ms wall, {cpu_s / runs * 1000:.2f} ms CPU;"
        " by stage (profiled shares of the CPU time):"
    )
    for stage in [s for s, _ in STAGES] + [OTHER]:
        share = seconds.get(stage, 0.0) / total
        print(f"    {stage:<24} {share * cpu_s / runs * 1000:6.2f} ms/run  {share:6.1%}")
    print(
        f"  harness overhead: {(1 - sut_share) / sut_share:.1f}x the SUT's own work (target <= 1x)"
    )
    print(
        f"  reports and summary (written once, from the spool): {report_s:.3f} s wall"
        f" ({report_cpu:.3f} s CPU)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", choices=("default", "heavy", "both"), default="both")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the heavy matrix")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N cases")
    parser.add_argument("--repeat", type=int, default=5, help="median of N timed runs")
    args = parser.parse_args()

    cases = sorted(str(p.parent) for p in FIXTURES.glob("*/case.yaml"))
    if args.limit:
        cases = cases[: args.limit]
    print(f"load average at start: {load_average()}")
    claim_process()  # this process is ours, as `streambench run`'s is: its runs freeze the same
    whole_process(cases, args.repeat)
    for name, matrix in matrices(args.matrix, args.seeds, cases).items():
        bench(name, matrix, args.repeat)
    print(f"load average at end: {load_average()}")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (timed figures mean little without them)."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
