"""How far ``streambench shrink`` reduces the naive SUT's failures, and how long it takes.

    python benchmarks/bench_shrink.py [--cases DIR] [--budget-s S] [--limit N]

Runs ``tests/suts/naive.py`` on the fixtures under the default chunkings, shrinks the first
failing run of every distinct (case, rule), and prints each reduction (events and content
characters before -> after, transport cuts, runs, seconds) and the medians: the reduction
ratio (before / after) over the unshrunk failing run, and the time per shrink. Run it from
the repo root (the SUT is ``tests.suts.naive:app``). ``--limit`` keeps the first N failures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from streambench.runner.matrix import DEFAULT_CHUNKINGS, Matrix, run_matrix
from streambench.uses.shrink import shrink_run, spec_of

ROOT = Path(__file__).resolve().parents[1]
SUT = "tests.suts.naive:app"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=ROOT / "fixtures")
    parser.add_argument("--budget-s", type=float, default=60.0)
    parser.add_argument("--limit", type=int, default=0, help="only the first N failures")
    args = parser.parse_args()
    matrix = Matrix(cases=[str(args.cases)], suts=[SUT], chunkings=list(DEFAULT_CHUNKINGS))
    rows = run_matrix(matrix).to_dict(orient="records")
    failures: dict[tuple[str, str], dict] = {}
    for row in rows:
        for v in row["violations"]:
            failures.setdefault((row["case"], v["rule"]), row)
    chosen = list(failures.items())[: args.limit or None]
    print(f"{len(failures)} distinct failing (case, rule) of {SUT}; shrinking {len(chosen)}")
    events, chars, seconds = [], [], []
    with tempfile.TemporaryDirectory() as out:
        for (case, rule), row in chosen:
            started = time.perf_counter()
            result = shrink_run(spec_of(row), rule, out, budget_s=args.budget_s)
            elapsed = time.perf_counter() - started
            b, a = result.before, result.after
            events.append(b.events / max(a.events, 1))
            chars.append(b.chars / max(a.chars, 1))
            seconds.append(elapsed)
            done = "" if result.complete else " (budget)"
            print(
                f"{case:28} {rule:26} events {b.events:4} -> {a.events:3}  chars {b.chars:5} ->"
                f" {a.chars:4}  cuts {b.cuts:4} -> {a.cuts:2}  {result.runs:4} runs"
                f" {elapsed:5.1f} s{done}"
            )
    print(
        f"median reduction: events {statistics.median(events):.1f}x, characters"
        f" {statistics.median(chars):.1f}x; median time {statistics.median(seconds):.1f} s"
        f" (max {max(seconds):.1f} s, budget {args.budget_s:g} s)"
    )


if __name__ == "__main__":
    main()
