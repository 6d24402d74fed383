"""Memory of a large matrix: the ``streambench run`` process's max RSS against the number of
runs, now that rows stream to disk instead of piling up in the parent.

    python benchmarks/bench_rss.py [--runs 1000,10000,100000] [--jobs 2]

Each size is one fresh ``streambench run`` of fixtures x ``events`` x enough seeds, writing
every report file. Printed per size: wall time, the parent's max RSS (VmHWM, read from /proc
while it runs), the largest worker's, and the slope of the parent's max RSS per 1000 runs
against the smallest size. The goal (issue 18): under 500 MB at 100k runs.
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
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parent = worker = 0
    while process.poll() is None:
        parent = max(parent, _hwm_kb(process.pid))
        for child in _children(process.pid):
            worker = max(worker, _hwm_kb(child))
        time.sleep(POLL_S)
    wall_s = time.perf_counter() - started
    err = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"streambench run failed ({process.returncode}): {err[-400:]}")
    return len(cases) * seeds, wall_s, parent, worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="1000,10000", help="comma-separated matrix sizes")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    sizes = [int(n) for n in args.runs.split(",")]
    print(f"{'runs':>8} {'wall s':>8} {'parent MB':>10} {'worker MB':>10} {'MB/1000 runs':>13}")
    first: tuple[int, int] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            runs, wall_s, parent, worker = measure(size, args.jobs, Path(tmp))
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
