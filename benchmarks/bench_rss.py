"""Memory of a large matrix: the ``streambench run`` process's max RSS against the number of
runs, now that rows stream to disk instead of piling up in the parent.

    python benchmarks/bench_rss.py [--runs 1000,10000,100000] [--jobs 2] [--rows-only]

Each size is one fresh ``streambench run`` of fixtures x ``events`` x enough seeds, writing
every report file. Printed per size: wall time, the parent's max RSS (VmHWM, read from /proc
while it runs), the largest worker's, and the slope of the parent's max RSS per 1000 runs
against the smallest size; a long run prints its progress (runs spooled, RSS so far) to stderr
every minute. The goal (issue 18): under 500 MB at 100k runs.

``--rows-only`` runs fixtures x ``events`` once and hands copies of those rows (a seed each)
to what ``streambench run`` does after its runs, in a fresh process: the results spool, the
cross-run rules, the five report files, the terminal summary. That is everything the parent
holds per run, at 100k runs in minutes instead of an hour or more (the runs themselves keep
nothing: runner/cache.py is bounded).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures"
POLL_S = 0.2
PROGRESS_S = 60.0
# What --rows-only runs in a fresh process: argv is (runs, out folder); prints max RSS KiB.
ROWS_ONLY = """
import io, resource, sys
from rich.console import Console
from streambench.cli.evaluate import summary_tables, violations_table
from streambench.report.files import write_streamed
from streambench.runner.matrix import Matrix, iter_matrix
runs, out = int(sys.argv[1]), sys.argv[2]
rows = list(iter_matrix(Matrix(cases=[sys.argv[3]], chunkings=["events"])))
def copies():
    for seed in range(-(-runs // len(rows))):
        for row in rows:
            yield {**row, "seed": seed}
written = write_streamed(copies(), out).write_reports()
console = Console(file=io.StringIO(), width=120)
for table in summary_tables(written.overview):
    console.print(table)
console.print(violations_table(written.violations, total=written.n_violations))
print(len(written.overview), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _hwm_kb(pid: int) -> int:
    """A process's peak resident set (VmHWM) in KiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def measure(runs: int, jobs: int, folder: Path) -> tuple[int, float, int, int]:
    """(runs, wall s, parent max RSS KiB, largest worker max RSS KiB) of one matrix."""
    cases = sorted(p for p in FIXTURES.iterdir() if (p / "case.yaml").is_file())
    seeds = max(1, -(-runs // len(cases)))
    matrix = folder / f"matrix-{runs}.yaml"
    matrix.write_text(
        yaml.safe_dump(
            {"case": [str(FIXTURES)], "chunking": ["events"], "seed": list(range(seeds))}
        )
    )
    command = [sys.executable, "-c", "from streambench.cli import main; main()", "run"]
    command += [str(matrix), "--jobs", str(jobs), "--out", str(folder / f"out-{runs}")]
    started = told = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = worker = 0
    spool = folder / f"out-{runs}" / "results.partial.jsonl"
    while process.poll() is None:
        parent = max(parent, _hwm_kb(process.pid))
        for child in _children(process.pid):
            worker = max(worker, _hwm_kb(child))
        time.sleep(POLL_S)
        if time.perf_counter() - told >= PROGRESS_S:
            told = time.perf_counter()
            print(
                f"  {told - started:6.0f} s: {_lines(spool)} runs spooled, parent max RSS"
                f" {parent / 1024:.0f} MB, worker {worker / 1024:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
    wall_s = time.perf_counter() - started
    err = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"streambench run failed ({process.returncode}): {err[-400:]}")
    return len(cases) * seeds, wall_s, parent, worker


def _lines(path: Path) -> int:
    """Lines in a file (0 when it is not there, e.g. once the reports replaced the spool)."""
    try:
        with path.open("rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


def measure_rows_only(runs: int, folder: Path) -> tuple[int, float, int, int]:
    """(runs, wall s, max RSS KiB, 0) of the spool, reports and summary of ``runs`` rows."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", ROWS_ONLY, str(runs), str(folder / f"rows-{runs}"), str(FIXTURES)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"--rows-only failed ({done.returncode}): {done.stderr[-400:]}")
    spooled, max_rss = (int(n) for n in done.stdout.split())
    return spooled, time.perf_counter() - started, max_rss, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="1000,10000", help="comma-separated matrix sizes")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--rows-only", action="store_true", help="spool and report copies of rows, no runs"
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.runs.split(",")]
    print(f"{'runs':>8} {'wall s':>8} {'parent MB':>10} {'worker MB':>10} {'MB/1000 runs':>13}")
    first: tuple[int, int] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            runs, wall_s, parent, worker = (
                measure_rows_only(size, Path(tmp))
                if args.rows_only
                else measure(size, args.jobs, Path(tmp))
            )
            slope = (
                f"{(parent - first[1]) / 1024 / ((runs - first[0]) / 1000):13.2f}"
                if first and runs > first[0]
                else f"{'':>13}"
            )
            first = first or (runs, parent)
            print(f"{runs:8d} {wall_s:8.1f} {parent / 1024:10.0f} {worker / 1024:10.0f} {slope}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
